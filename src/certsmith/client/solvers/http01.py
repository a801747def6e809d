"""http-01 solvers (RFC 8555 §8.3): a standalone responder, or files in a webroot."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from certsmith.client.session import AcmeClientError
from certsmith.client.solvers import listen, stop

_PREFIX = "/.well-known/acme-challenge/"
_MAX_REQUEST = 8192


class StandaloneHttp01:
    """A small HTTP server answering only challenge paths, for the length of one run."""

    challenge_type = "http-01"

    def __init__(self, port: int = 80, address: str | None = None) -> None:
        self.port = port
        self.address = address
        self._answers: dict[str, str] = {}
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> StandaloneHttp01:
        self._server = await listen(
            self._serve,
            self.address,
            self.port,
            busy_advice="stop the web server there, use --webroot, or pick another "
            "--http-01-port the CA is told to use",
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._server)

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        self._answers[token] = key_authorization

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        self._answers.pop(token, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            request_line = head[:_MAX_REQUEST].split(b"\r\n", 1)[0].decode("latin-1")
            method, _, rest = request_line.partition(" ")
            path = rest.split(" ", 1)[0]
            answer = self._answers.get(path[len(_PREFIX) :]) if path.startswith(_PREFIX) else None
            if method == "GET" and answer is not None:
                body = answer.encode()
                status = b"200 OK"
            else:
                body, status = b"not found\n", b"404 Not Found"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class WebrootHttp01:
    """Writes `DIR/.well-known/acme-challenge/TOKEN` for a web server already serving DIR."""

    challenge_type = "http-01"

    def __init__(self, webroot: Path) -> None:
        self.directory = webroot / ".well-known" / "acme-challenge"

    async def __aenter__(self) -> WebrootHttp01:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AcmeClientError(f"cannot create {self.directory}: {err}") from err
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None  # the token files are removed one by one in cleanup

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        path = self.directory / token
        tmp = path.with_name(f".{token}.tmp")
        tmp.write_text(key_authorization)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / token).unlink()
