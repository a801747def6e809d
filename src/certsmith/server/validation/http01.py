"""http-01 validation (RFC 8555 §8.3): fetch the key authorization over plain HTTP."""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.validation.resolver import IPAddress, Resolver, first_reachable

# A key authorization is 43 + 1 + 43 characters; anything much longer is not one.
_MAX_BODY = 1024
_MAX_REDIRECTS = 10


def _problem(kind: ProblemType, detail: str, identifier: dict[str, str]) -> AcmeProblem:
    return AcmeProblem(kind, detail, identifier=identifier)


class Http01Validator:
    def __init__(self, resolver: Resolver, port: int, timeout: float) -> None:
        self._resolver = resolver
        self._port = port
        # One client for all validations: building one costs ~17 ms of CPU (it loads a CA
        # bundle). No keep-alive, so every validation opens a fresh connection, and no
        # TLS verification, since http-01 is plain HTTP.
        self._client = httpx.AsyncClient(
            timeout=timeout,
            trust_env=False,
            verify=False,  # noqa: S501 -- http-01 is plain HTTP; nothing to verify
            follow_redirects=False,  # followed by hand, with the VA's own rules
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": "certsmith-va/0.1"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def validate(
        self, identifier_type: str, name: str, token: str, key_authorization: str
    ) -> dict[str, Any]:
        """The validation record on success; an AcmeProblem saying what went wrong otherwise.

        An "ip" identifier is fetched from that address with it as Host (RFC 8738 §4).
        Redirects are followed as Let's Encrypt does: at most 10, to http or https on the
        usual ports, each target resolved again.
        """
        ident = {"type": identifier_type, "value": name}
        target = _Target("http", name, self._port, f"/.well-known/acme-challenge/{token}")
        record: dict[str, Any] = {"url": target.url, "hostname": name, "port": str(self._port)}
        for _ in range(_MAX_REDIRECTS + 1):
            addresses = await self._addresses(target.host)
            record.setdefault("addressesResolved", [str(a) for a in addresses])
            answer = await first_reachable(
                addresses, record, functools.partial(self._fetch, target=target, ident=ident)
            )
            if isinstance(answer, bytes):
                return self._check(answer, key_authorization, record, target, ident)
            target = self._follow(target, answer, ident)
            record.setdefault("redirects", []).append(target.url)
        raise _problem(ProblemType.UNAUTHORIZED, f"more than {_MAX_REDIRECTS} redirects", ident)

    async def _addresses(self, host: str) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            return await self._resolver.addresses(host)

    @staticmethod
    def _check(
        body: bytes,
        key_authorization: str,
        record: dict[str, Any],
        target: _Target,
        ident: dict[str, str],
    ) -> dict[str, Any]:
        if body.rstrip(b" \t\r\n") != key_authorization.encode():
            shown = body[:64].decode("utf-8", "replace")
            raise _problem(
                ProblemType.INCORRECT_RESPONSE,
                f"the key authorization file from {target.url} is wrong: {shown!r}",
                ident,
            )
        return record

    def _follow(self, current: _Target, location: str, ident: dict[str, str]) -> _Target:
        """The next hop of a redirect, if it is one a CA may follow."""
        parsed = urllib.parse.urlsplit(urllib.parse.urljoin(current.url, location))
        allowed = {"http": {80, self._port}, "https": {443}}
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError:
            port = -1
        if parsed.scheme not in allowed or port not in allowed[parsed.scheme]:
            raise _problem(
                ProblemType.UNAUTHORIZED,
                f"redirect to {location!r} refused: only http on port {self._port} or 80 "
                "and https on 443 are followed",
                ident,
            )
        if not parsed.hostname:
            raise _problem(ProblemType.UNAUTHORIZED, f"redirect to {location!r} has no host", ident)
        path = parsed.path or "/"
        return _Target(
            parsed.scheme,
            parsed.hostname,
            port,
            path + (f"?{parsed.query}" if parsed.query else ""),
        )

    async def _fetch(
        self, address: IPAddress, target: _Target, ident: dict[str, str]
    ) -> bytes | str:
        """The body of a 200, or the Location of a redirect; a problem for anything else."""
        literal = f"[{address}]" if address.version == 6 else str(address)
        url = f"{target.scheme}://{literal}:{target.port}{target.path}"
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with self._client.stream(
                "GET", url, headers={"Host": target.host_header}, extensions=extensions
            ) as response:
                if response.is_redirect and "Location" in response.headers:
                    return str(response.headers["Location"])
                if response.status_code != 200:
                    raise _problem(
                        ProblemType.UNAUTHORIZED,
                        f"{address}: invalid response from {target.url}: "
                        f"HTTP {response.status_code}",
                        ident,
                    )
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_BODY:
                        raise _problem(
                            ProblemType.UNAUTHORIZED,
                            f"{address}: response body is longer than {_MAX_BODY} bytes",
                            ident,
                        )
                return body
        except httpx.TimeoutException as err:
            raise _problem(
                ProblemType.CONNECTION,
                f"{address}: timeout during connect or read (likely firewall problem)",
                ident,
            ) from err
        except httpx.HTTPError as err:
            raise _problem(
                ProblemType.CONNECTION, f"{address}: connection failed: {err}", ident
            ) from err


@dataclass(frozen=True)
class _Target:
    """One URL the VA fetches: scheme, host (name or address), port and path."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host_header}{self.path}"
