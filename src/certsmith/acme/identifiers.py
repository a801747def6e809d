"""ACME identifiers: DNS names (RFC 8555 §7.1.3, §7.1.4) and IP addresses (RFC 8738)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import idna

from certsmith.acme.problems import AcmeProblem, ProblemType, malformed

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_NAME = 253


@dataclass(frozen=True, order=True)
class Identifier:
    """An identifier as it appears on the wire: `{"type": "dns", "value": "..."}`."""

    type: str
    value: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "value": self.value}

    @property
    def is_ip(self) -> bool:
        return self.type == "ip"

    @property
    def is_wildcard(self) -> bool:
        return self.type == "dns" and self.value.startswith("*.")

    @property
    def base(self) -> str:
        """The name without a leading wildcard label (RFC 8555 §7.1.3 authz identifier)."""
        return self.value[2:] if self.is_wildcard else self.value


def rejected(value: str, detail: str) -> AcmeProblem:
    return AcmeProblem(
        ProblemType.REJECTED_IDENTIFIER, detail, identifier={"type": "dns", "value": value}
    )


def normalise_dns_name(value: str) -> str:
    """Lowercase A-label form of a DNS name, or rejectedIdentifier saying what is wrong.

    A leading "*." wildcard label is kept; whether wildcards are allowed is policy's call.
    """
    if not value:
        raise rejected(value, "empty DNS name")
    if value.endswith("."):
        raise rejected(value, f"DNS name {value!r} must not end in a dot")
    wildcard = value.startswith("*.")
    rest = value[2:] if wildcard else value
    if "*" in rest:
        raise rejected(value, f"DNS name {value!r}: '*' is only allowed as the whole first label")
    try:
        ascii_name = rest.lower() if rest.isascii() else idna.encode(rest, uts46=True).decode()
        # Round-trip A-labels so "xn--" garbage is refused, not signed.
        if "xn--" in ascii_name:
            idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError) as err:
        raise rejected(value, f"DNS name {value!r} is not a valid IDN: {err}") from err
    if _looks_like_ip(rest):
        raise rejected(value, f"{value!r} is an IP address; use an 'ip' identifier")
    if len(ascii_name) > _MAX_NAME:
        raise rejected(value, f"DNS name is longer than {_MAX_NAME} characters")
    labels = ascii_name.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise rejected(value, f"DNS name {value!r} has an invalid label {label!r}")
        # RFC 5891 §4.2.3.1: "--" in positions 3-4 is reserved for A-labels ("xn--").
        if label[2:4] == "--" and not label.startswith("xn--"):
            raise rejected(value, f"DNS name {value!r} has a reserved label {label!r}")
    if len(labels) < 2:
        raise rejected(value, f"DNS name {value!r} has a single label; a domain is needed")
    if labels[-1].isdigit():
        raise rejected(value, f"DNS name {value!r} has an all-numeric top-level label")
    return ("*." if wildcard else "") + ascii_name


def _looks_like_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_identifier(raw: Any) -> Identifier:
    """One identifier from a request payload, normalised; malformed if not an object."""
    if not isinstance(raw, dict):
        raise malformed("each identifier must be an object with 'type' and 'value'")
    id_type, value = raw.get("type"), raw.get("value")
    if not isinstance(id_type, str) or not isinstance(value, str):
        raise malformed("identifier 'type' and 'value' must be strings")
    if id_type == "ip":
        return Identifier("ip", normalise_ip(value))
    if id_type != "dns":
        raise AcmeProblem(
            ProblemType.UNSUPPORTED_IDENTIFIER,
            f"identifier type {id_type!r} is not supported; use 'dns' or 'ip'",
            identifier={"type": id_type, "value": value},
        )
    return Identifier("dns", normalise_dns_name(value))


def normalise_ip(value: str) -> str:
    """The canonical text of an IP identifier (RFC 8738 §3; RFC 5952 for IPv6)."""
    problem = AcmeProblem(
        ProblemType.MALFORMED,
        f"{value!r} is not an IPv4 or IPv6 address",
        identifier={"type": "ip", "value": value},
    )
    if "%" in value or "/" in value:
        raise problem
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as err:
        raise problem from err
