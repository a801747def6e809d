"""ACME problem types (RFC 8555 §6.7) and the one exception that carries them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

ACME_ERROR_PREFIX = "urn:ietf:params:acme:error:"


class ProblemType(enum.Enum):
    """The closed set of problem types, in RFC 8555 §6.7 order, with their HTTP status."""

    ACCOUNT_DOES_NOT_EXIST = ("accountDoesNotExist", 400)
    ALREADY_REVOKED = ("alreadyRevoked", 400)
    BAD_CSR = ("badCSR", 400)
    BAD_NONCE = ("badNonce", 400)
    BAD_PUBLIC_KEY = ("badPublicKey", 400)
    BAD_REVOCATION_REASON = ("badRevocationReason", 400)
    BAD_SIGNATURE_ALGORITHM = ("badSignatureAlgorithm", 400)
    CAA = ("caa", 403)
    COMPOUND = ("compound", 403)
    CONNECTION = ("connection", 400)
    DNS = ("dns", 400)
    EXTERNAL_ACCOUNT_REQUIRED = ("externalAccountRequired", 400)
    INCORRECT_RESPONSE = ("incorrectResponse", 403)
    INVALID_CONTACT = ("invalidContact", 400)
    MALFORMED = ("malformed", 400)
    ORDER_NOT_READY = ("orderNotReady", 403)
    RATE_LIMITED = ("rateLimited", 429)
    REJECTED_IDENTIFIER = ("rejectedIdentifier", 400)
    SERVER_INTERNAL = ("serverInternal", 500)
    TLS = ("tls", 400)
    UNAUTHORIZED = ("unauthorized", 403)
    UNSUPPORTED_CONTACT = ("unsupportedContact", 400)
    UNSUPPORTED_IDENTIFIER = ("unsupportedIdentifier", 400)
    USER_ACTION_REQUIRED = ("userActionRequired", 403)

    @property
    def code(self) -> str:
        return str(self.value[0])

    @property
    def status(self) -> int:
        return int(self.value[1])

    @property
    def urn(self) -> str:
        return ACME_ERROR_PREFIX + self.code

    @classmethod
    def from_urn(cls, urn: str) -> ProblemType | None:
        """The type named by a URN, or None for a URN outside the closed set."""
        if not urn.startswith(ACME_ERROR_PREFIX):
            return None
        code = urn[len(ACME_ERROR_PREFIX) :]
        for member in cls:
            if member.code == code:
                return member
        return None


@dataclass
class AcmeProblem(Exception):
    """A failure that becomes an RFC 7807 problem document at the HTTP boundary."""

    type: ProblemType
    detail: str
    status: int | None = None
    identifier: dict[str, str] | None = None
    subproblems: list[AcmeProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.type.code}: {self.detail}")

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else self.type.status

    def to_dict(self) -> dict[str, Any]:
        """The problem document body (RFC 7807 with RFC 8555 §6.7.1 subproblems)."""
        doc: dict[str, Any] = {"type": self.type.urn, "detail": self.detail}
        if self.identifier is not None:
            doc["identifier"] = self.identifier
        if self.subproblems:
            doc["subproblems"] = [sub.to_dict() for sub in self.subproblems]
        doc.update(self.extra)
        doc["status"] = self.http_status
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AcmeProblem:
        """A problem read back from a stored or received document."""
        ptype = ProblemType.from_urn(str(doc.get("type", ""))) or ProblemType.SERVER_INTERNAL
        subs = [cls.from_dict(sub) for sub in doc.get("subproblems", []) if isinstance(sub, dict)]
        ident = doc.get("identifier")
        return cls(
            ptype,
            str(doc.get("detail", "")),
            status=doc.get("status") if isinstance(doc.get("status"), int) else None,
            identifier=ident if isinstance(ident, dict) else None,
            subproblems=subs,
        )


def malformed(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.MALFORMED, detail)


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.UNAUTHORIZED, detail)


def conflict(detail: str, location: str | None = None) -> AcmeProblem:
    """RFC 8555 §7.3.5: 409 with the holder's Location; §6.7 has no "conflict" type, so the
    registered `malformed` carries it."""
    headers = {"Location": location} if location else {}
    return AcmeProblem(ProblemType.MALFORMED, detail, status=409, headers=headers)


def not_found(detail: str = "no such resource") -> AcmeProblem:
    return AcmeProblem(ProblemType.MALFORMED, detail, status=404)
