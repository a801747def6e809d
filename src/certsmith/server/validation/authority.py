"""The validation authority's one entry point: which check runs for which challenge."""

from __future__ import annotations

from typing import Any

from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.config import ServerConfig
from certsmith.server.validation.dns01 import Dns01Validator
from certsmith.server.validation.http01 import Http01Validator
from certsmith.server.validation.resolver import Resolver
from certsmith.server.validation.tlsalpn01 import TlsAlpn01Validator

HTTP01, DNS01, TLSALPN01 = "http-01", "dns-01", "tls-alpn-01"


def challenge_types(identifier_type: str, wildcard: bool) -> tuple[str, ...]:
    """Challenges offered per identifier: a wildcard only by DNS (RFC 8555 §7.1.3), an IP
    address never by DNS (RFC 8738 §7)."""
    if identifier_type == "ip":
        return (HTTP01, TLSALPN01)
    if wildcard:
        return (DNS01,)
    return (HTTP01, DNS01, TLSALPN01)


class ValidationAuthority:
    def __init__(self, config: ServerConfig) -> None:
        timeout = config.validation_timeout
        resolver = Resolver(config.dns_server, timeout)
        self._http01 = Http01Validator(resolver, config.http01_port, timeout)
        self._dns01 = Dns01Validator(config.dns_server, timeout)
        self._tlsalpn01 = TlsAlpn01Validator(resolver, config.tlsalpn01_port, timeout)

    async def validate(
        self,
        challenge_type: str,
        identifier_type: str,
        value: str,
        token: str,
        key_authorization: str,
    ) -> dict[str, Any]:
        """The validation record, or an AcmeProblem saying why control was not shown."""
        if challenge_type == HTTP01:
            return await self._http01.validate(identifier_type, value, token, key_authorization)
        if challenge_type == DNS01 and identifier_type == "dns":
            return await self._dns01.validate(value, key_authorization)
        if challenge_type == TLSALPN01:
            return await self._tlsalpn01.validate(identifier_type, value, key_authorization)
        raise AcmeProblem(
            ProblemType.SERVER_INTERNAL, f"no validator for {challenge_type} on {identifier_type}"
        )

    async def close(self) -> None:
        await self._http01.close()
