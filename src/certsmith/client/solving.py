"""Solvers built from command-line options or a stored renewal configuration."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from certsmith.client.session import AcmeClientError
from certsmith.client.solvers import Solver


def parse_host_port(value: str, default_port: int) -> tuple[str, int]:
    from certsmith.server.config import parse_host_port as parse

    try:
        return parse(value, default_port=default_port)
    except ValueError as err:
        raise AcmeClientError(str(err)) from err


def build_solvers(config: dict[str, Any]) -> list[Solver]:
    """One solver per configured method, in the order they should be tried."""
    solvers: list[Solver] = []
    if "dns_hook" in config:
        from certsmith.client.solvers.dns01 import HookDns01

        hook = config["dns_hook"]
        solvers.append(HookDns01(hook["command"], _resolver(hook), hook.get("timeout", 120.0)))
    if "rfc2136" in config:
        from certsmith.client.solvers.dns01 import Rfc2136Dns01

        update = config["rfc2136"]
        solvers.append(
            Rfc2136Dns01(
                server=parse_host_port(update["server"], 53),
                tsig_name=update.get("tsig_name"),
                tsig_secret=update.get("tsig_secret"),
                tsig_algorithm=update.get("tsig_algorithm", "hmac-sha256"),
                zone=update.get("zone"),
                resolver=_resolver(update),
                propagation_timeout=update.get("timeout", 120.0),
            )
        )
    if "standalone" in config:
        from certsmith.client.solvers.http01 import StandaloneHttp01

        solvers.append(
            StandaloneHttp01(config["standalone"]["port"], config["standalone"].get("address"))
        )
    if "webroot" in config:
        from certsmith.client.solvers.http01 import WebrootHttp01

        solvers.append(WebrootHttp01(Path(config["webroot"])))
    if "tls_alpn" in config:
        from certsmith.client.solvers.tlsalpn01 import StandaloneTlsAlpn01

        solvers.append(
            StandaloneTlsAlpn01(config["tls_alpn"]["port"], config["tls_alpn"].get("address"))
        )
    if not solvers:
        raise AcmeClientError(
            "choose how to answer challenges: --standalone, --webroot DIR, --dns-hook CMD, "
            "--rfc2136-server HOST, or --tls-alpn"
        )
    return solvers


def _resolver(options: dict[str, Any]) -> tuple[str, int] | None:
    value = options.get("resolver")
    return parse_host_port(value, 53) if value else None


class ListenerPool:
    """Standalone listeners kept open across the issuances of one run (`renew`), so that
    certificates answering on the same port and address are renewed at the same time: a
    responder looks answers up by token (http-01) or SNI name (tls-alpn-01)."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, int, str | None], Solver] = {}
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    @staticmethod
    def key(solver: Solver) -> tuple[str, int, str | None] | None:
        port, address = getattr(solver, "port", None), getattr(solver, "address", None)
        if not isinstance(port, int):
            return None
        return (solver.challenge_type, port, address)

    async def adopt(self, solver: Solver) -> Solver | None:
        """The pool's open listener standing in for `solver`, or None if it holds no port."""
        key = self.key(solver)
        if key is None:
            return None
        async with self._lock:
            if key not in self._open:
                self._open[key] = await self._stack.enter_async_context(solver)
            return self._open[key]

    async def close(self) -> None:
        await self._stack.aclose()
