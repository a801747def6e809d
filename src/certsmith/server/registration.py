"""The registration authority: account, order, authorization and challenge life cycles.

Every state change here is one database transaction and one structured log line.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certsmith.acme.identifiers import Identifier
from certsmith.acme.jose import (
    AnyKey,
    b64url_decode,
    import_public_jwk,
    key_authorization,
    thumbprint,
)
from certsmith.acme.keys import parse_csr
from certsmith.acme.problems import (
    AcmeProblem,
    ProblemType,
    conflict,
    malformed,
    not_found,
    unauthorized,
)
from certsmith.server import eab
from certsmith.server.accounts import check_account_key, check_contacts
from certsmith.server.clock import Clock
from certsmith.server.config import ServerConfig
from certsmith.server.events import log_event
from certsmith.server.issuance.ca import CertificateAuthority
from certsmith.server.policy import IdentifierPolicy
from certsmith.server.states import Kind, check_transition
from certsmith.server.storage import Store, Tx, new_id
from certsmith.server.storage.models import (
    AccountRow,
    AuthorizationRow,
    CertificateRow,
    ChallengeRow,
    OrderAuthorizationRow,
    OrderRow,
)
from certsmith.server.validation.authority import ValidationAuthority, challenge_types

_log = logging.getLogger(__name__)
_MAX_CONCURRENT_VALIDATIONS = 64


@dataclass(frozen=True)
class OrderView:
    order: OrderRow
    authorization_ids: list[str]


@dataclass(frozen=True)
class AuthorizationView:
    authorization: AuthorizationRow
    challenges: list[ChallengeRow]


# Event name prefix and id field per kind: "authz.valid" with authz=ID.
_EVENT_PREFIX = {
    Kind.ACCOUNT: "account",
    Kind.ORDER: "order",
    Kind.AUTHORIZATION: "authz",
    Kind.CHALLENGE: "challenge",
}


def _event(tx: Tx, name: str, **fields: Any) -> None:
    """Log a state change once its transaction has committed, so logs never lie."""
    tx.after_commit(functools.partial(log_event, name, **fields))


def _change(tx: Tx, kind: Kind, row: Any, new: str, **fields: Any) -> None:
    """Move `row` to `new` if RFC 8555 §7.1.6 allows it, and log the move."""
    check_transition(kind, row.status, new)
    row.status = new
    prefix = _EVENT_PREFIX[kind]
    _event(tx, f"{prefix}.{new}", **{prefix: row.id}, **fields)


def _owned(row: Any, account: AccountRow, what: str) -> None:
    if row is None:
        raise not_found(f"no such {what}")
    if row.account_id != account.id:
        raise unauthorized(f"this {what} belongs to another account")


class RegistrationAuthority:
    def __init__(
        self,
        store: Store,
        config: ServerConfig,
        clock: Clock,
        ca: CertificateAuthority,
        va: ValidationAuthority,
    ) -> None:
        self._store = store
        self._config = config
        self._clock = clock
        self._ca = ca
        self._va = va
        self._policy = IdentifierPolicy(
            config.blocked_suffixes, config.max_identifiers_per_order, config.allow_private_ips
        )
        self._validations: set[asyncio.Task[None]] = set()
        self._validation_slots = asyncio.Semaphore(_MAX_CONCURRENT_VALIDATIONS)

    # --- accounts (RFC 8555 §7.3) ---

    async def account(self, account_id: str) -> AccountRow | None:
        async with self._store.transaction(write=False) as tx:
            return await tx.get(AccountRow, account_id)

    async def account_by_key(self, key: AnyKey) -> AccountRow | None:
        async with self._store.transaction(write=False) as tx:
            return await tx.account_by_thumbprint(thumbprint(key))

    async def new_account(
        self, key: AnyKey, payload: dict[str, Any], url: str
    ) -> tuple[AccountRow, bool]:
        """The account for `key`: (existing, False) or (newly created, True).

        `url` is the newAccount URL, which an External Account Binding must name.
        """
        for flag in ("onlyReturnExisting", "termsOfServiceAgreed"):
            if flag in payload and not isinstance(payload[flag], bool):
                raise malformed(f"'{flag}' must be true or false")
        existing = await self.account_by_key(key)
        if existing is not None:
            if existing.status != "valid":
                raise unauthorized(f"account is {existing.status}")
            return existing, False
        if payload.get("onlyReturnExisting") is True:
            raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account exists for this key")
        check_account_key(key)
        binding = None
        if self._config.eab_required:
            raw_binding = payload.get("externalAccountBinding")
            if raw_binding is None:
                raise eab.required_problem()
            binding = eab.parse_binding(raw_binding, thumbprint(key), url)
        contacts = check_contacts(payload.get("contact"))
        agreed = payload.get("termsOfServiceAgreed") is True
        # The directory always names terms (the configured URL or our own /terms page).
        if not agreed:
            raise malformed("you must agree to the terms of service (termsOfServiceAgreed)")
        account = AccountRow(
            id=new_id(),
            key_thumbprint=thumbprint(key),
            jwk=dict(key.as_dict(private=False)),
            status="valid",
            contact=contacts,
            tos_agreed=agreed,
            terms_version=self._config.terms_version,
            created_at=self._clock.now(),
        )
        async with self._store.transaction() as tx:
            # Two racing requests for one key: the unique thumbprint lets only one through.
            if await tx.account_by_thumbprint(account.key_thumbprint) is not None:
                raise conflict("an account for this key was just made")
            tx.add(account)
            if binding is not None:
                await tx.flush()
                await eab.bind(tx, binding, account.id)
            _event(
                tx,
                "account.created",
                account=account.id,
                contacts=len(contacts),
                eab=binding.key_id if binding else None,
            )
        return account, True

    async def update_account(self, account: AccountRow, payload: dict[str, Any]) -> AccountRow:
        """Contact update or deactivation (RFC 8555 §7.3.2, §7.3.6)."""
        status = payload.get("status")
        if status is not None and status != "deactivated":
            raise malformed("the only status a client may set on its account is 'deactivated'")
        contacts = check_contacts(payload["contact"]) if "contact" in payload else None
        async with self._store.transaction() as tx:
            row = await tx.get(AccountRow, account.id, for_update=True)
            assert row is not None
            if row.status != "valid":
                raise unauthorized(f"account is {row.status}")
            if contacts is not None:
                row.contact = contacts
                _event(tx, "account.updated", account=row.id, contacts=len(contacts))
            if payload.get("termsOfServiceAgreed") is True:
                if row.terms_version != self._config.terms_version:
                    _event(tx, "account.terms_agreed", account=row.id)
                row.tos_agreed = True
                row.terms_version = self._config.terms_version
            if status == "deactivated":
                _change(tx, Kind.ACCOUNT, row, "deactivated")
                await self._deactivate_pending_authorizations(tx, row.id)
            return row

    async def change_key(self, account: AccountRow, new_key: AnyKey) -> AccountRow:
        """Key rollover (RFC 8555 §7.3.5); the caller has verified both signatures."""
        check_account_key(new_key)
        new_thumbprint = thumbprint(new_key)
        async with self._store.transaction() as tx:
            row = await tx.get(AccountRow, account.id, for_update=True)
            assert row is not None
            if await tx.account_by_thumbprint(new_thumbprint) is not None:
                raise conflict("the new key belongs to an account")
            row.key_thumbprint = new_thumbprint
            row.jwk = dict(new_key.as_dict(private=False))
            _event(tx, "account.key_changed", account=row.id)
            return row

    async def _deactivate_pending_authorizations(self, tx: Tx, account_id: str) -> None:
        for authz in await tx.pending_authorizations(account_id):
            _change(tx, Kind.AUTHORIZATION, authz, "deactivated", account=account_id)

    # --- orders (RFC 8555 §7.4) ---

    async def new_order(self, account: AccountRow, payload: dict[str, Any]) -> OrderView:
        if "notBefore" in payload or "notAfter" in payload:
            raise malformed("notBefore and notAfter are not supported; omit them")
        identifiers = self._policy.check_order(payload.get("identifiers"))
        now = self._clock.now()
        order = OrderRow(
            id=new_id(),
            account_id=account.id,
            status="pending",
            identifiers=[i.to_dict() for i in identifiers],
            expires=now + self._config.order_lifetime,
            error=None,
            certificate_id=None,
            created_at=now,
        )
        async with self._store.transaction() as tx:
            tx.add(order)
            await tx.flush()
            authz_ids, statuses, expiries = [], [], [order.expires]
            for position, ident in enumerate(identifiers):
                authz = await self._reusable_authorization(tx, account.id, ident, now)
                if authz is None:
                    authz = self._new_authorization(tx, account.id, ident, now)
                authz_ids.append(authz.id)
                statuses.append(authz.status)
                expiries.append(authz.expires)
                tx.add(
                    OrderAuthorizationRow(
                        order_id=order.id, authorization_id=authz.id, position=position
                    )
                )
            order.expires = min(expiries)
            _event(
                tx,
                "order.created",
                order=order.id,
                account=account.id,
                identifiers=[i.value for i in identifiers],
            )
            if all(s == "valid" for s in statuses):
                _change(tx, Kind.ORDER, order, "ready")
        return OrderView(order, authz_ids)

    async def _reusable_authorization(
        self, tx: Tx, account_id: str, ident: Identifier, now: datetime
    ) -> AuthorizationRow | None:
        """A valid authorization of this account that outlives a new order (RFC 8555 §7.1.4
        lets the CA reuse it; Let's Encrypt does)."""
        return await tx.reusable_authorization(
            account_id,
            ident.type,
            ident.base,
            ident.is_wildcard,
            valid_until=now + self._config.order_lifetime,
        )

    def _new_authorization(
        self, tx: Tx, account_id: str, ident: Identifier, now: datetime
    ) -> AuthorizationRow:
        authz = AuthorizationRow(
            id=new_id(),
            account_id=account_id,
            identifier_type=ident.type,
            identifier_value=ident.base,
            wildcard=ident.is_wildcard,
            status="pending",
            expires=now + self._config.pending_authorization_lifetime,
            created_at=now,
        )
        tx.add(authz)
        for challenge_type in challenge_types(ident.type, ident.is_wildcard):
            tx.add(
                ChallengeRow(
                    id=new_id(),
                    authorization_id=authz.id,
                    type=challenge_type,
                    token=secrets.token_urlsafe(32),
                    status="pending",
                    validated=None,
                    error=None,
                    validation_record=None,
                )
            )
        _event(tx, "authz.created", authz=authz.id, account=account_id, identifier=ident.value)
        return authz

    async def order(self, account: AccountRow, order_id: str) -> OrderView:
        async with self._store.transaction(write=False) as tx:
            order = await tx.get(OrderRow, order_id)
            _owned(order, account, "order")
            assert order is not None
            authzs = await tx.authorizations_of_order(order.id)
        if not self._has_expired(order, authzs):
            return OrderView(order, [a.id for a in authzs])
        # Rare: something expired since the last look; record it, under the write lock.
        async with self._store.transaction() as tx:
            order = await tx.get(OrderRow, order_id, for_update=True)
            assert order is not None
            authzs = await tx.authorizations_of_order(order.id)
            self._expire(tx, order, authzs)
            return OrderView(order, [a.id for a in authzs])

    def _has_expired(self, order: OrderRow, authzs: list[AuthorizationRow]) -> bool:
        now = self._clock.now()
        if order.status in ("pending", "ready") and order.expires <= now:
            return True
        return any(a.status in ("pending", "valid") and a.expires <= now for a in authzs)

    async def orders_of_account(
        self, account: AccountRow, after: str | None, limit: int
    ) -> list[str]:
        async with self._store.transaction(write=False) as tx:
            return [o.id for o in await tx.orders_of_account(account.id, after=after, limit=limit)]

    def _expire(self, tx: Tx, order: OrderRow, authzs: list[AuthorizationRow]) -> None:
        """Apply expiry lazily, as part of whatever transaction is reading the rows."""
        now = self._clock.now()
        for authz in authzs:
            if authz.status in ("pending", "valid") and authz.expires <= now:
                _change(tx, Kind.AUTHORIZATION, authz, "expired")
        if order.status in ("pending", "ready") and order.expires <= now:
            self._fail_order(tx, order, AcmeProblem(ProblemType.MALFORMED, "order expired"))

    def _fail_order(self, tx: Tx, order: OrderRow, problem: AcmeProblem) -> None:
        _change(tx, Kind.ORDER, order, "invalid", error=problem.type.code)
        order.error = problem.to_dict()

    # --- authorizations and challenges (RFC 8555 §7.5) ---

    async def authorization(self, account: AccountRow, authz_id: str) -> AuthorizationView:
        async with self._store.transaction(write=False) as tx:
            authz = await tx.get(AuthorizationRow, authz_id)
            _owned(authz, account, "authorization")
            assert authz is not None
            if not self._authorization_expired(authz):
                return AuthorizationView(authz, await tx.challenges_of([authz.id]))
        await self._expire_authorization(authz_id)
        async with self._store.transaction(write=False) as tx:
            authz = await tx.get(AuthorizationRow, authz_id)
            assert authz is not None
            return AuthorizationView(authz, await tx.challenges_of([authz.id]))

    def _authorization_expired(self, authz: AuthorizationRow) -> bool:
        return authz.status in ("pending", "valid") and authz.expires <= self._clock.now()

    async def _expire_authorization(self, authz_id: str) -> None:
        """Record an expiry found on reading (RFC 8555 §7.1.6), and fail its open orders."""
        async with self._store.transaction() as tx:
            authz = await tx.get(AuthorizationRow, authz_id, for_update=True)
            if authz is None or not self._authorization_expired(authz):
                return
            _change(tx, Kind.AUTHORIZATION, authz, "expired")
            for order in await tx.orders_of_authorization(authz.id):
                if order.status in ("pending", "ready"):
                    self._fail_order(
                        tx, order, AcmeProblem(ProblemType.MALFORMED, "an authorization expired")
                    )

    async def deactivate_authorization(
        self, account: AccountRow, authz_id: str
    ) -> AuthorizationView:
        """The client gives up an authorization (RFC 8555 §7.5.2); its orders fail."""
        async with self._store.transaction() as tx:
            authz = await tx.get(AuthorizationRow, authz_id, for_update=True)
            _owned(authz, account, "authorization")
            assert authz is not None
            if authz.status not in ("pending", "valid"):
                raise malformed(f"an authorization that is {authz.status} cannot be deactivated")
            _change(tx, Kind.AUTHORIZATION, authz, "deactivated", account=account.id)
            problem = AcmeProblem(
                ProblemType.UNAUTHORIZED,
                f"the authorization for {authz.identifier_value} was deactivated",
            )
            for order in await tx.orders_of_authorization(authz.id):
                if order.status in ("pending", "ready"):
                    self._fail_order(tx, order, problem)
            return AuthorizationView(authz, await tx.challenges_of([authz.id]))

    async def challenge(
        self, account: AccountRow, challenge_id: str
    ) -> tuple[ChallengeRow, AuthorizationRow]:
        async with self._store.transaction(write=False) as tx:
            challenge, authz = await self._challenge_and_authz(tx, account, challenge_id)
        if self._authorization_expired(authz):
            await self._expire_authorization(authz.id)
            async with self._store.transaction(write=False) as tx:
                return await self._challenge_and_authz(tx, account, challenge_id)
        return challenge, authz

    async def _challenge_and_authz(
        self, tx: Tx, account: AccountRow, challenge_id: str, *, for_update: bool = False
    ) -> tuple[ChallengeRow, AuthorizationRow]:
        challenge = await tx.get(ChallengeRow, challenge_id, for_update=for_update)
        if challenge is None:
            raise not_found("no such challenge")
        authz = await tx.get(AuthorizationRow, challenge.authorization_id, for_update=for_update)
        _owned(authz, account, "challenge")
        assert authz is not None
        return challenge, authz

    async def respond_to_challenge(
        self, account: AccountRow, challenge_id: str
    ) -> tuple[ChallengeRow, AuthorizationRow]:
        """The client says it is ready (RFC 8555 §7.5.1): start validating once."""
        async with self._store.transaction() as tx:
            challenge, authz = await self._challenge_and_authz(
                tx, account, challenge_id, for_update=True
            )
            if challenge.status != "pending":
                return challenge, authz
            if authz.status == "pending" and authz.expires <= self._clock.now():
                _change(tx, Kind.AUTHORIZATION, authz, "expired")
            if authz.status != "pending":
                raise malformed(f"the authorization is {authz.status}, not pending")
            _change(
                tx, Kind.CHALLENGE, challenge, "processing", authz=authz.id, type=challenge.type
            )
        self._schedule_validation(challenge.id)
        return challenge, authz

    def _schedule_validation(self, challenge_id: str) -> None:
        task = asyncio.create_task(self._validate(challenge_id))
        self._validations.add(task)
        task.add_done_callback(self._validations.discard)

    async def resume_validations(self) -> None:
        """Restart validations a previous process left in `processing`."""
        async with self._store.transaction(write=False) as tx:
            pending = await tx.rows_in_status(ChallengeRow, "processing")
        for challenge in pending:
            self._schedule_validation(challenge.id)

    async def _validate(self, challenge_id: str) -> None:
        async with self._validation_slots:
            async with self._store.transaction(write=False) as tx:
                challenge = await tx.get(ChallengeRow, challenge_id)
                assert challenge is not None
                authz = await tx.get(AuthorizationRow, challenge.authorization_id)
                assert authz is not None
                account = await tx.get(AccountRow, authz.account_id)
                assert account is not None
            expected = key_authorization(challenge.token, import_public_jwk(account.jwk))
            record: dict[str, Any] | None = None
            problem: AcmeProblem | None = None
            try:
                record = await self._va.validate(
                    challenge.type,
                    authz.identifier_type,
                    authz.identifier_value,
                    challenge.token,
                    expected,
                )
            except AcmeProblem as err:
                problem = err
            except Exception:  # the VA must never leave a challenge stuck in processing
                _log.exception("validation of challenge %s crashed", challenge_id)
                problem = AcmeProblem(ProblemType.SERVER_INTERNAL, "validation failed internally")
            await self._record_validation(challenge_id, record, problem)

    async def _record_validation(
        self, challenge_id: str, record: dict[str, Any] | None, problem: AcmeProblem | None
    ) -> None:
        now = self._clock.now()
        async with self._store.transaction() as tx:
            challenge = await tx.get(ChallengeRow, challenge_id, for_update=True)
            assert challenge is not None
            if challenge.status != "processing":
                return
            authz = await tx.get(AuthorizationRow, challenge.authorization_id, for_update=True)
            assert authz is not None
            challenge.validation_record = [record] if record else None
            outcome = "valid" if problem is None else "invalid"
            _change(
                tx,
                Kind.CHALLENGE,
                challenge,
                outcome,
                authz=authz.id,
                type=challenge.type,
                identifier=authz.identifier_value,
                wildcard=authz.wildcard,
                error=problem.type.code if problem else None,
            )
            if problem is None:
                challenge.validated = now
            else:
                challenge.error = problem.to_dict()
            if authz.status == "pending":
                _change(tx, Kind.AUTHORIZATION, authz, outcome)
                if problem is None:
                    authz.expires = now + self._config.valid_authorization_lifetime
            for order in await tx.orders_of_authorization(authz.id):
                await self._advance_order(tx, order, problem)

    async def _advance_order(self, tx: Tx, order: OrderRow, problem: AcmeProblem | None) -> None:
        if order.status != "pending":
            return
        authzs = await tx.authorizations_of_order(order.id)
        failed = [a for a in authzs if a.status not in ("pending", "valid")]
        if failed:
            # RFC 8555 §6.7.1: the order's error names each failed identifier.
            reason = problem or AcmeProblem(ProblemType.UNAUTHORIZED, "authorization failed")
            subproblems = [
                AcmeProblem(
                    reason.type,
                    reason.detail,
                    identifier={"type": a.identifier_type, "value": a.identifier_value},
                )
                for a in failed
            ]
            names = ", ".join(a.identifier_value for a in failed)
            self._fail_order(
                tx,
                order,
                AcmeProblem(
                    reason.type,
                    f"authorization failed for {names}: {reason.detail}",
                    subproblems=subproblems,
                ),
            )
        elif all(a.status == "valid" for a in authzs):
            _change(tx, Kind.ORDER, order, "ready")

    # --- finalize and certificates (RFC 8555 §7.4) ---

    async def finalize(
        self, account: AccountRow, order_id: str, payload: dict[str, Any]
    ) -> OrderView:
        csr_b64 = payload.get("csr")
        if not isinstance(csr_b64, str):
            raise malformed("finalize needs a 'csr' string")
        csr, names = parse_csr(b64url_decode(csr_b64))
        async with self._store.transaction() as tx:
            order = await tx.get(OrderRow, order_id, for_update=True)
            _owned(order, account, "order")
            assert order is not None
            authzs = await tx.authorizations_of_order(order.id)
            self._expire(tx, order, authzs)
            if order.status != "ready":
                raise AcmeProblem(
                    ProblemType.ORDER_NOT_READY,
                    f"order is {order.status}; it must be ready to finalize",
                )
            wanted = {(i["type"], i["value"]) for i in order.identifiers}
            self._check_csr_names(names.identifiers, names.common_name, wanted)
            self._check_csr_key(csr, account)
            _change(tx, Kind.ORDER, order, "processing")
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
            _event(
                tx,
                "certificate.issued",
                certificate=certificate.id,
                serial=certificate.serial,
                order=order.id,
                account=account.id,
                names=sorted(v for _, v in wanted),
            )
            _change(tx, Kind.ORDER, row, "valid", certificate=certificate.id)
            row.certificate_id = certificate.id
        return OrderView(row, [a.id for a in authzs])

    @staticmethod
    def _check_csr_names(
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

    @staticmethod
    def _check_csr_key(csr: x509.CertificateSigningRequest, account: AccountRow) -> None:
        # RFC 8555 §11.1: a certificate key equal to the account key invites confusion.
        account_key = import_public_jwk(account.jwk).raw_value
        der = serialization.Encoding.DER
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        if csr.public_key().public_bytes(der, spki) == account_key.public_bytes(der, spki):  # type: ignore[union-attr]
            raise AcmeProblem(ProblemType.BAD_CSR, "certificate key must differ from account key")

    async def _fail_processing(self, order_id: str) -> None:
        async with self._store.transaction() as tx:
            order = await tx.get(OrderRow, order_id, for_update=True)
            if order is not None and order.status == "processing":
                problem = AcmeProblem(ProblemType.SERVER_INTERNAL, "signing failed")
                self._fail_order(tx, order, problem)

    async def fail_interrupted_issuance(self) -> None:
        """Orders a crashed process left in `processing` end invalid; none is signed twice.

        TODO: with several processes on one database this must only touch orders whose
        processing began before this process started, or it fails a live issuance.
        """
        async with self._store.transaction() as tx:
            for order in await tx.rows_in_status(OrderRow, "processing"):
                self._fail_order(
                    tx,
                    order,
                    AcmeProblem(
                        ProblemType.SERVER_INTERNAL, "issuance was interrupted; place a new order"
                    ),
                )

    async def certificate(self, account: AccountRow, certificate_id: str) -> CertificateRow:
        async with self._store.transaction(write=False) as tx:
            row = await tx.get(CertificateRow, certificate_id)
            _owned(row, account, "certificate")
            assert row is not None
            return row

    async def close(self) -> None:
        for task in list(self._validations):
            task.cancel()
        await asyncio.gather(*self._validations, return_exceptions=True)
        await self._va.close()
