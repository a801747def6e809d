"""http-01 validation (RFC 8555 §8.3): fetch the key authorization over plain HTTP."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx

from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.validation.resolver import IPAddress, Resolver, first_reachable

# A key authorization is 43 + 1 + 43 characters; anything much longer is not one.
_MAX_BODY = 1024


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
            follow_redirects=False,
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
        """
        if identifier_type == "ip":
            address = ipaddress.ip_address(name)
            addresses: list[IPAddress] = [address]
            host = f"[{address}]" if address.version == 6 else str(address)
        else:
            addresses = await self._resolver.addresses(name)
            host = name
        ident = {"type": identifier_type, "value": name}
        path = f"/.well-known/acme-challenge/{token}"
        host = host if self._port == 80 else f"{host}:{self._port}"
        record: dict[str, Any] = {
            "url": f"http://{host}{path}",
            "hostname": name,
            "port": str(self._port),
            "addressesResolved": [str(a) for a in addresses],
        }
        body = await first_reachable(
            addresses, record, lambda address: self._fetch(address, host, path, ident)
        )
        if body.rstrip(b" \t\r\n") != key_authorization.encode():
            shown = body[:64].decode("utf-8", "replace")
            raise _problem(
                ProblemType.INCORRECT_RESPONSE,
                f"the key authorization file from {record['url']} is wrong: {shown!r}",
                ident,
            )
        return record

    async def _fetch(
        self,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        host: str,
        path: str,
        ident: dict[str, str],
    ) -> bytes:
        literal = f"[{address}]" if address.version == 6 else str(address)
        url = f"http://{literal}:{self._port}{path}"
        try:
            headers = {"Host": host}
            async with self._client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    # TODO: follow redirects to ports 80/443 as Let's Encrypt does
                    # (up to 10); until then a redirect fails the challenge.
                    raise _problem(
                        ProblemType.UNAUTHORIZED,
                        f"{address}: invalid response from http://{host}{path}: "
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
