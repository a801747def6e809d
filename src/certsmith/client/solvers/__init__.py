"""Challenge solvers: each publishes a key authorization where one challenge type looks."""

from __future__ import annotations

import asyncio
import errno
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol, Self

from certsmith.client.session import AcmeClientError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Solver(Protocol):
    """Publishes and withdraws challenge responses; used as an async context manager."""

    challenge_type: str

    async def __aenter__(self) -> Solver: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        """Make the response visible; return once the CA can see it."""

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        """Withdraw the response; must not raise for a response never presented."""


async def listen(
    handler: Handler,
    address: str | None,
    port: int,
    *,
    busy_advice: str,
    tls: ssl.SSLContext | None = None,
) -> asyncio.Server:
    """A standalone responder's socket, with a message a user can act on when it fails."""
    try:
        return await asyncio.start_server(handler, address, port, ssl=tls)
    except OSError as err:
        where = f"{address or '*'}:{port}"
        if err.errno == errno.EADDRINUSE:
            raise AcmeClientError(f"port {port} is in use ({where}); {busy_advice}") from err
        if err.errno == errno.EACCES:
            raise AcmeClientError(
                f"no permission to listen on {where}; ports below 1024 need root"
            ) from err
        raise AcmeClientError(f"cannot listen on {where}: {err}") from err


async def stop(server: asyncio.Server | None) -> None:
    if server is not None:
        server.close()
        await server.wait_closed()


class NoListener:
    """For solvers that publish elsewhere (files, DNS) and hold nothing open between uses."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
