"""The RFC 8555 §7.1.6 state machines, written once as data."""

from __future__ import annotations

import enum


class Kind(enum.Enum):
    ORDER = "order"
    AUTHORIZATION = "authorization"
    CHALLENGE = "challenge"
    ACCOUNT = "account"


TRANSITIONS: dict[Kind, dict[str, frozenset[str]]] = {
    # §7.1.6 figure: challenge objects.
    Kind.CHALLENGE: {
        "pending": frozenset({"processing"}),
        "processing": frozenset({"valid", "invalid"}),
        "valid": frozenset(),
        "invalid": frozenset(),
    },
    # §7.1.6 figure: authorization objects.
    Kind.AUTHORIZATION: {
        # The figure joins pending's line to the bar above revoked, deactivated and expired.
        "pending": frozenset({"valid", "invalid", "expired", "deactivated", "revoked"}),
        "valid": frozenset({"expired", "deactivated", "revoked"}),
        "invalid": frozenset(),
        "expired": frozenset(),
        "deactivated": frozenset(),
        "revoked": frozenset(),
    },
    # §7.1.6 figure: order objects.
    Kind.ORDER: {
        "pending": frozenset({"ready", "invalid"}),
        "ready": frozenset({"processing", "invalid"}),
        "processing": frozenset({"valid", "invalid"}),
        "valid": frozenset(),
        "invalid": frozenset(),
    },
    # §7.1.6 figure: account objects.
    Kind.ACCOUNT: {
        "valid": frozenset({"deactivated", "revoked"}),
        "deactivated": frozenset(),
        "revoked": frozenset(),
    },
}


class InvalidTransition(RuntimeError):
    """A programming error: the code tried a move RFC 8555 forbids."""


def check_transition(kind: Kind, old: str, new: str) -> None:
    allowed = TRANSITIONS[kind].get(old)
    if allowed is None or new not in allowed:
        raise InvalidTransition(f"{kind.value}: {old} -> {new} is not allowed (RFC 8555 §7.1.6)")
