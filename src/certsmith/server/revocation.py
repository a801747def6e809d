"""Certificate revocation (RFC 8555 §7.6): who may revoke, and with which reasons."""

from __future__ import annotations

import functools
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certsmith.acme.jose import AnyKey, b64url_decode
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed, unauthorized
from certsmith.server.clock import Clock
from certsmith.server.events import log_event
from certsmith.server.storage import Store
from certsmith.server.storage.models import AccountRow, CertificateRow

# RFC 5280 §5.3.1 reason codes a subscriber may ask for (CA/B BR 7.2.2); the others
# (cACompromise, certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise) are
# the CA's own to use.
SUBSCRIBER_REASONS = {
    0: "unspecified",
    1: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
}


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


class Revoker:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def revoke(
        self, payload: dict[str, Any], *, account: AccountRow | None, key: AnyKey
    ) -> CertificateRow:
        """Revoke for the owning account, an account with valid authorizations for every
        name, or whoever signs with the certificate's own key (`account` is None then)."""
        reason = self._reason(payload.get("reason", 0))
        cert_b64 = payload.get("certificate")
        if not isinstance(cert_b64, str):
            raise malformed("revokeCert needs a 'certificate' string")
        try:
            cert = x509.load_der_x509_certificate(b64url_decode(cert_b64))
        except ValueError as err:
            raise malformed("'certificate' is not a DER X.509 certificate") from err
        async with self._store.transaction() as tx:
            row = await tx.certificate_by_serial(format(cert.serial_number, "x"))
            if row is None or not _same_certificate(row, cert):
                raise AcmeProblem(ProblemType.MALFORMED, "no such certificate here", status=404)
            if account is None:
                if _spki(key.raw_value) != _spki(cert.public_key()):
                    raise unauthorized("the JWS key is not the certificate's key")
            elif row.account_id != account.id:
                names = _dns_names(cert)
                held = {
                    a.identifier_value
                    for a in await tx.valid_authorizations(account.id, names)
                    if a.expires > self._clock.now()
                }
                if not names or set(names) - held:
                    raise unauthorized(
                        "this account neither owns the certificate nor holds valid "
                        "authorizations for all its names"
                    )
            if row.revoked_at is not None:
                raise AcmeProblem(ProblemType.ALREADY_REVOKED, "certificate is already revoked")
            row.revoked_at = self._clock.now()
            row.revocation_reason = reason
            tx.after_commit(
                functools.partial(
                    log_event,
                    "certificate.revoked",
                    certificate=row.id,
                    serial=row.serial,
                    reason=SUBSCRIBER_REASONS[reason],
                    by=account.id if account else "certificate-key",
                )
            )
            return row

    @staticmethod
    def _reason(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise AcmeProblem(ProblemType.BAD_REVOCATION_REASON, "'reason' must be an integer")
        if value not in SUBSCRIBER_REASONS:
            allowed = ", ".join(f"{c} ({n})" for c, n in SUBSCRIBER_REASONS.items())
            raise AcmeProblem(
                ProblemType.BAD_REVOCATION_REASON,
                f"reason {value} is not accepted; use one of {allowed}",
            )
        return value


def _same_certificate(row: CertificateRow, cert: x509.Certificate) -> bool:
    stored = x509.load_pem_x509_certificates(row.chain_pem.encode())[0]
    return stored == cert


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]
