"""http-01 validation (RFC 8555 §8.3): fetch the key authorization over plain HTTP."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import httpx

from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.validation.resolver import Resolver

# A key authorization is 43 + 1 + 43 characters; anything much longer is not one.
_MAX_BODY = 1024


@dataclass(frozen=True)
class Http01Result:
    record: dict[str, Any]


def _problem(kind: ProblemType, detail: str, name: str) -> AcmeProblem:
    return AcmeProblem(kind, detail, identifier={"type": "dns", "value": name})


class Http01Validator:
    def __init__(self, resolver: Resolver, port: int, timeout: float) -> None:
        self._resolver = resolver
        self._port = port
        self._timeout = timeout

    async def validate(self, name: str, token: str, key_authorization: str) -> dict[str, Any]:
        """The validation record on success; an AcmeProblem saying what went wrong otherwise."""
        addresses = await self._resolver.addresses(name)
        path = f"/.well-known/acme-challenge/{token}"
        host = name if self._port == 80 else f"{name}:{self._port}"
        record: dict[str, Any] = {
            "url": f"http://{host}{path}",
            "hostname": name,
            "port": str(self._port),
            "addressesResolved": [str(a) for a in addresses],
        }
        last_error: AcmeProblem | None = None
        for address in addresses:
            record["addressUsed"] = str(address)
            try:
                body = await self._fetch(address, host, path, name)
            except AcmeProblem as problem:
                # Only a failure to connect moves on to the next address; any answer counts.
                if problem.type is not ProblemType.CONNECTION:
                    raise problem
                last_error = problem
                continue
            if body.rstrip(b" \t\r\n") != key_authorization.encode():
                shown = body[:64].decode("utf-8", "replace")
                raise _problem(
                    ProblemType.INCORRECT_RESPONSE,
                    f"the key authorization file from {record['url']} is wrong: {shown!r}",
                    name,
                )
            return record
        assert last_error is not None
        raise last_error

    async def _fetch(
        self,
        address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        host: str,
        path: str,
        name: str,
    ) -> bytes:
        literal = f"[{address}]" if address.version == 6 else str(address)
        url = f"http://{literal}:{self._port}{path}"
        try:
            headers = {"Host": host, "User-Agent": "certsmith-va/0.1"}
            client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)
            async with client, client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    # TODO: follow redirects to ports 80/443 as Let's Encrypt does
                    # (up to 10); until then a redirect fails the challenge.
                    raise _problem(
                        ProblemType.UNAUTHORIZED,
                        f"{address}: invalid response from http://{host}{path}: "
                        f"HTTP {response.status_code}",
                        name,
                    )
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_BODY:
                        raise _problem(
                            ProblemType.UNAUTHORIZED,
                            f"{address}: response body is longer than {_MAX_BODY} bytes",
                            name,
                        )
                return body
        except httpx.TimeoutException as err:
            raise _problem(
                ProblemType.CONNECTION,
                f"{address}: timeout during connect or read (likely firewall problem)",
                name,
            ) from err
        except httpx.HTTPError as err:
            raise _problem(
                ProblemType.CONNECTION, f"{address}: connection failed: {err}", name
            ) from err
