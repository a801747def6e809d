"""Finalize and certificates (RFC 8555 §7.4): CSR checks, signing, the certificate row.

A crash between the two transactions leaves the order `processing`; the next start fails
such orders (`fail_interrupted_issuance`) rather than signing twice.
"""

from __future__ import annotations

import logging
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certsmith.acme.jose import b64url_decode, import_public_jwk
from certsmith.acme.keys import parse_csr
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed
from certsmith.server.clock import Clock
from certsmith.server.config import ServerConfig
from certsmith.server.issuance.ca import CertificateAuthority
from certsmith.server.lifecycle import OrderView, change, event, expire, fail_order, owned
from certsmith.server.states import Kind
from certsmith.server.storage import Store, new_id
from certsmith.server.storage.models import AccountRow, CertificateRow, OrderRow

_log = logging.getLogger(__name__)


def check_csr_names(
    sans: frozenset[tuple[str, str]], cn: str | None, wanted: set[tuple[str, str]]
) -> None:
    """RFC 8555 §7.4: the CSR asks for exactly the order's identifiers."""
    if cn is not None and cn not in {value for _, value in sans}:
        raise AcmeProblem(ProblemType.BAD_CSR, "CSR common name must also be a SAN")
    if sans != wanted:
        missing = sorted(f"{t}:{v}" for t, v in wanted - sans)
        extra = sorted(f"{t}:{v}" for t, v in sans - wanted)
        raise AcmeProblem(
            ProblemType.BAD_CSR,
            f"CSR names must equal the order's; missing {missing}, not in order {extra}",
        )


def check_csr_key(csr: x509.CertificateSigningRequest, account: AccountRow) -> None:
    """RFC 8555 §11.1: a certificate key equal to the account key invites confusion."""
    account_key = import_public_jwk(account.jwk).raw_value
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if csr.public_key().public_bytes(der, spki) == account_key.public_bytes(der, spki):  # type: ignore[union-attr]
        raise AcmeProblem(ProblemType.BAD_CSR, "certificate key must differ from account key")


class Finalizer:
    def __init__(
        self, store: Store, config: ServerConfig, clock: Clock, ca: CertificateAuthority
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._ca = ca

    async def finalize(
        self, account: AccountRow, order_id: str, payload: dict[str, Any]
    ) -> OrderView:
        csr_b64 = payload.get("csr")
        if not isinstance(csr_b64, str):
            raise malformed("finalize needs a 'csr' string")
        csr, names = parse_csr(b64url_decode(csr_b64))
        async with self._store.transaction() as tx:
            order = await tx.get(OrderRow, order_id, for_update=True)
            owned(order, account, "order")
            assert order is not None
            authzs = await tx.authorizations_of_order(order.id)
            expire(tx, order, authzs, self._clock.now())
            if order.status != "ready":
                raise AcmeProblem(
                    ProblemType.ORDER_NOT_READY,
                    f"order is {order.status}; it must be ready to finalize",
                )
            wanted = {(i["type"], i["value"]) for i in order.identifiers}
            check_csr_names(names.identifiers, names.common_name, wanted)
            check_csr_key(csr, account)
            change(tx, Kind.ORDER, order, "processing")
        try:
            issued = self._ca.issue(
                csr.public_key(),
                sorted(v for t, v in wanted if t == "dns"),
                self._config.certificate_lifetime,
                ip_addresses=sorted(v for t, v in wanted if t == "ip"),
            )
        except Exception as err:
            _log.exception("signing for order %s failed", order.id)
            await self._fail_processing(order.id)
            raise AcmeProblem(ProblemType.SERVER_INTERNAL, "the CA failed to sign") from err
        certificate = CertificateRow(
            id=new_id(),
            serial=issued.serial_hex,
            account_id=account.id,
            order_id=order.id,
            chain_pem=issued.chain_pem,
            not_before=issued.certificate.not_valid_before_utc,
            not_after=issued.certificate.not_valid_after_utc,
            revoked_at=None,
            revocation_reason=None,
            created_at=self._clock.now(),
        )
        async with self._store.transaction() as tx:
            row = await tx.get(OrderRow, order.id, for_update=True)
            assert row is not None
            tx.add(certificate)
            event(
                tx,
                "certificate.issued",
                certificate=certificate.id,
                serial=certificate.serial,
                order=order.id,
                account=account.id,
                names=sorted(v for _, v in wanted),
            )
            change(tx, Kind.ORDER, row, "valid", certificate=certificate.id)
            row.certificate_id = certificate.id
        return OrderView(row, [a.id for a in authzs])

    async def _fail_processing(self, order_id: str) -> None:
        async with self._store.transaction() as tx:
            order = await tx.get(OrderRow, order_id, for_update=True)
            if order is not None and order.status == "processing":
                problem = AcmeProblem(ProblemType.SERVER_INTERNAL, "signing failed")
                fail_order(tx, order, problem)

    async def fail_interrupted_issuance(self) -> None:
        """Orders a crashed process left in `processing` end invalid; none is signed twice.

        TODO: with several processes on one database this must only touch orders whose
        processing began before this process started, or it fails a live issuance.
        """
        async with self._store.transaction() as tx:
            for order in await tx.rows_in_status(OrderRow, "processing"):
                fail_order(
                    tx,
                    order,
                    AcmeProblem(
                        ProblemType.SERVER_INTERNAL, "issuance was interrupted; place a new order"
                    ),
                )

    async def certificate(self, account: AccountRow, certificate_id: str) -> CertificateRow:
        async with self._store.transaction(write=False) as tx:
            row = await tx.get(CertificateRow, certificate_id)
            owned(row, account, "certificate")
            assert row is not None
            return row
