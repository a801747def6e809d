"""Identifier policy: which names this CA will put into a certificate."""

from __future__ import annotations

import ipaddress
from typing import Any

from certsmith.acme.identifiers import (
    Identifier,
    normalise_dns_name,
    parse_identifier,
    rejected,
)
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed


class IdentifierPolicy:
    def __init__(
        self,
        blocked_suffixes: tuple[str, ...],
        max_identifiers: int,
        allow_private_ips: bool = False,
    ) -> None:
        # Suffixes go through the same normalisation as requested names (IDNA A-labels),
        # so a Unicode suffix blocks its xn-- form; a malformed one fails at start.
        self._blocked = tuple(normalise_suffix(s) for s in blocked_suffixes)
        self._max = max_identifiers
        self._allow_private_ips = allow_private_ips

    def check_order(self, raw_identifiers: Any) -> list[Identifier]:
        """Normalised, de-duplicated identifiers; every bad one reported as a subproblem."""
        if not isinstance(raw_identifiers, list) or not raw_identifiers:
            raise malformed("'identifiers' must be a non-empty list")
        if len(raw_identifiers) > self._max:
            raise AcmeProblem(
                ProblemType.REJECTED_IDENTIFIER,
                f"an order may hold at most {self._max} identifiers",
            )
        accepted: set[Identifier] = set()
        failures: list[AcmeProblem] = []
        for raw in raw_identifiers:
            try:
                ident = parse_identifier(raw)
                self._check(ident)
            except AcmeProblem as problem:
                if problem.identifier is None:
                    raise
                failures.append(problem)
            else:
                accepted.add(ident)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise AcmeProblem(
                failures[0].type if len({f.type for f in failures}) == 1 else ProblemType.COMPOUND,
                f"{len(failures)} identifiers were refused; see subproblems",
                subproblems=failures,
            )
        return sorted(accepted)

    def _check(self, ident: Identifier) -> None:
        if ident.is_ip:
            self._check_ip(ident.value)
            return
        name = ident.base
        for suffix in self._blocked:
            if name == suffix or name.endswith("." + suffix):
                raise rejected(ident.value, f"names under {suffix!r} are blocked by policy")

    def _check_ip(self, value: str) -> None:
        address = ipaddress.ip_address(value)
        if address.is_multicast or address.is_unspecified:
            raise _rejected_ip(value, "multicast and unspecified addresses are never allowed")
        if isinstance(address, ipaddress.IPv4Address) and address.is_reserved:
            raise _rejected_ip(
                value, "reserved IPv4 addresses (240.0.0.0/4, 255.255.255.255) are never allowed"
            )
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            raise _rejected_ip(
                value, f"use the IPv4 identifier {address.ipv4_mapped} for a mapped address"
            )
        if self._allow_private_ips:
            return
        # RFC 8738 §5 leaves this to policy; a public CA must not vouch for addresses
        # every network reuses, so private, loopback, link-local and reserved ranges are out.
        if not address.is_global:
            raise _rejected_ip(value, f"{value} is not a public address (see --allow-private-ips)")


def normalise_suffix(suffix: str) -> str:
    """A blocked suffix in A-label form; single labels such as "internal" are allowed."""
    bare = suffix.strip(".")
    if "*" in bare:
        raise ValueError(f"blocked suffix {suffix!r} must not contain '*'")
    try:
        # A throwaway first label lets one-label suffixes pass the two-label rule.
        return normalise_dns_name("a." + bare)[2:]
    except AcmeProblem as err:
        raise ValueError(f"blocked suffix {suffix!r} is not a DNS name: {err.detail}") from err


def _rejected_ip(value: str, detail: str) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.REJECTED_IDENTIFIER, detail, identifier={"type": "ip", "value": value}
    )
