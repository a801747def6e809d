"""Name resolution for the VA: a configured DNS server, or the system resolver."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import dns.resolver

from certsmith.acme.problems import AcmeProblem, ProblemType

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")


def dns_problem(detail: str, name: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.DNS, detail, identifier={"type": "dns", "value": name})


class Resolver:
    """Resolves A and AAAA; IPv6 first, as the order to try them (RFC 8305 spirit)."""

    def __init__(self, server: tuple[str, int] | None, timeout: float) -> None:
        self._timeout = timeout
        self._dns: dns.asyncresolver.Resolver | None = None
        if server is not None:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [server[0]]
            resolver.port = server[1]
            resolver.lifetime = timeout
            self._dns = resolver

    async def addresses(self, name: str) -> list[IPAddress]:
        # RFC 6761 §6.3: "localhost" names always mean the loopback interface.
        if name == "localhost" or name.endswith(".localhost"):
            return [ipaddress.ip_address("127.0.0.1")]
        found = await (self._query(name) if self._dns else self._system(name))
        if not found:
            raise dns_problem(f"no A or AAAA records found for {name}", name)
        found.sort(key=lambda a: a.version, reverse=True)
        return found

    async def _query(self, name: str) -> list[IPAddress]:
        assert self._dns is not None
        found: list[IPAddress] = []
        for rdtype in ("AAAA", "A"):
            try:
                answer = await self._dns.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.Timeout as err:
                detail = f"DNS query timed out looking up {rdtype} for {name}"
                raise dns_problem(detail, name) from err
            except dns.exception.DNSException as err:
                detail = f"DNS problem looking up {rdtype} for {name}: {err}"
                raise dns_problem(detail, name) from err
            found += [ipaddress.ip_address(r.address) for r in answer]
        return found

    async def _system(self, name: str) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), self._timeout
            )
        except (OSError, TimeoutError) as err:
            raise dns_problem(f"could not resolve {name}: {err}", name) from err
        return list({ipaddress.ip_address(info[4][0]) for info in infos})


async def first_reachable(
    addresses: list[IPAddress],
    record: dict[str, Any],
    attempt: Callable[[IPAddress], Awaitable[T]],
) -> T:
    """`attempt` on each address in turn, noting it in `record`; only a failure to connect
    moves on to the next address, any answer from a server counts."""
    last_error: AcmeProblem | None = None
    for address in addresses:
        record["addressUsed"] = str(address)
        try:
            return await attempt(address)
        except AcmeProblem as problem:
            if problem.type is not ProblemType.CONNECTION:
                raise
            last_error = problem
    assert last_error is not None
    raise last_error
