"""Account rules: contact URLs and account key policy (RFC 8555 §7.3)."""

from __future__ import annotations

from typing import Any

from certsmith.acme.identifiers import normalise_dns_name
from certsmith.acme.jose import AnyKey
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed

_MAX_CONTACTS = 10
_MAX_CONTACT_LENGTH = 320


def check_contacts(raw: Any) -> list[str]:
    """Validated `mailto:` contacts; invalidContact or unsupportedContact otherwise."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise malformed("'contact' must be a list of strings")
    if len(raw) > _MAX_CONTACTS:
        raise AcmeProblem(ProblemType.INVALID_CONTACT, f"at most {_MAX_CONTACTS} contacts")
    return [_check_contact(c) for c in raw]


def _check_contact(contact: str) -> str:
    if not contact.startswith("mailto:"):
        raise AcmeProblem(
            ProblemType.UNSUPPORTED_CONTACT, f"only mailto: contacts are supported: {contact!r}"
        )
    address = contact[len("mailto:") :]
    # RFC 6068 mailto URIs are ASCII; control characters and quoting have no place here.
    if not all(33 <= ord(c) < 127 for c in address) or '"' in address or "\\" in address:
        raise AcmeProblem(
            ProblemType.INVALID_CONTACT,
            f"contact {contact!r} must be a plain ASCII address without quotes or controls",
        )
    if len(contact) > _MAX_CONTACT_LENGTH or any(c in address for c in "?,<> \t\r\n"):
        raise AcmeProblem(
            ProblemType.INVALID_CONTACT,
            f"contact {contact!r} must be one plain address without header fields",
        )
    local, sep, domain = address.rpartition("@")
    if not sep or not local or "@" in local:
        raise AcmeProblem(ProblemType.INVALID_CONTACT, f"contact {contact!r} is not an address")
    try:
        normalise_dns_name(domain)
    except AcmeProblem as err:
        raise AcmeProblem(
            ProblemType.INVALID_CONTACT, f"contact {contact!r} has an invalid domain"
        ) from err
    return contact


def check_account_key(key: AnyKey) -> None:
    """Account keys: RSA 2048 to 4096, ECDSA P-256/P-384/P-521, Ed25519."""
    kty = key.key_type
    if kty == "RSA":
        size = key.raw_value.key_size  # type: ignore[union-attr]
        if not 2048 <= size <= 4096:
            raise AcmeProblem(
                ProblemType.BAD_PUBLIC_KEY,
                f"RSA account keys must be 2048 to 4096 bits, not {size}",
            )
    elif kty == "EC" and key.get("crv") not in ("P-256", "P-384", "P-521"):
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, "EC account keys must use P-256/384/521")
    elif kty == "OKP" and key.get("crv") != "Ed25519":
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, "OKP account keys must be Ed25519")
