"""The registration authority: account, order, authorization and challenge life cycles.

Every state change here is one database transaction and one structured log line.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime
from typing import Any

from certsmith.acme.identifiers import Identifier
from certsmith.acme.jose import (
    AnyKey,
    import_public_jwk,
    key_authorization,
    thumbprint,
)
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
from certsmith.server.issuance.ca import CertificateAuthority
from certsmith.server.lifecycle import (
    AuthorizationView,
    OrderView,
    change,
    event,
    expire,
    fail_order,
    has_expired,
    owned,
)
from certsmith.server.policy import IdentifierPolicy
from certsmith.server.states import Kind
from certsmith.server.storage import Store, Tx, new_id
from certsmith.server.storage.models import (
    AccountRow,
    AuthorizationRow,
    ChallengeRow,
    OrderAuthorizationRow,
    OrderRow,
)
from certsmith.server.validation.authority import ValidationAuthority, challenge_types

_log = logging.getLogger(__name__)
_MAX_CONCURRENT_VALIDATIONS = 64


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
            event(
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
                event(tx, "account.updated", account=row.id, contacts=len(contacts))
            if payload.get("termsOfServiceAgreed") is True:
                if row.terms_version != self._config.terms_version:
                    event(tx, "account.terms_agreed", account=row.id)
                row.tos_agreed = True
                row.terms_version = self._config.terms_version
            if status == "deactivated":
                change(tx, Kind.ACCOUNT, row, "deactivated")
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
            event(tx, "account.key_changed", account=row.id)
            return row

    async def _deactivate_pending_authorizations(self, tx: Tx, account_id: str) -> None:
        for authz in await tx.pending_authorizations(account_id):
            change(tx, Kind.AUTHORIZATION, authz, "deactivated", account=account_id)

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
            event(
                tx,
                "order.created",
                order=order.id,
                account=account.id,
                identifiers=[i.value for i in identifiers],
            )
            if all(s == "valid" for s in statuses):
                change(tx, Kind.ORDER, order, "ready")
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
        event(tx, "authz.created", authz=authz.id, account=account_id, identifier=ident.value)
        return authz

    async def order(self, account: AccountRow, order_id: str) -> OrderView:
        async with self._store.transaction(write=False) as tx:
            order = await tx.get(OrderRow, order_id)
            owned(order, account, "order")
            assert order is not None
            authzs = await tx.authorizations_of_order(order.id)
        if not has_expired(order, authzs, self._clock.now()):
            return OrderView(order, [a.id for a in authzs])
        # Rare: something expired since the last look; record it, under the write lock.
        async with self._store.transaction() as tx:
            order = await tx.get(OrderRow, order_id, for_update=True)
            assert order is not None
            authzs = await tx.authorizations_of_order(order.id)
            expire(tx, order, authzs, self._clock.now())
            return OrderView(order, [a.id for a in authzs])

    async def orders_of_account(
        self, account: AccountRow, after: str | None, limit: int
    ) -> list[str]:
        async with self._store.transaction(write=False) as tx:
            return [o.id for o in await tx.orders_of_account(account.id, after=after, limit=limit)]

    # --- authorizations and challenges (RFC 8555 §7.5) ---

    async def authorization(self, account: AccountRow, authz_id: str) -> AuthorizationView:
        async with self._store.transaction(write=False) as tx:
            authz = await tx.get(AuthorizationRow, authz_id)
            owned(authz, account, "authorization")
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
            change(tx, Kind.AUTHORIZATION, authz, "expired")
            for order in await tx.orders_of_authorization(authz.id):
                if order.status in ("pending", "ready"):
                    fail_order(
                        tx, order, AcmeProblem(ProblemType.MALFORMED, "an authorization expired")
                    )

    async def deactivate_authorization(
        self, account: AccountRow, authz_id: str
    ) -> AuthorizationView:
        """The client gives up an authorization (RFC 8555 §7.5.2); its orders fail."""
        async with self._store.transaction() as tx:
            authz = await tx.get(AuthorizationRow, authz_id, for_update=True)
            owned(authz, account, "authorization")
            assert authz is not None
            if authz.status not in ("pending", "valid"):
                raise malformed(f"an authorization that is {authz.status} cannot be deactivated")
            change(tx, Kind.AUTHORIZATION, authz, "deactivated", account=account.id)
            problem = AcmeProblem(
                ProblemType.UNAUTHORIZED,
                f"the authorization for {authz.identifier_value} was deactivated",
            )
            for order in await tx.orders_of_authorization(authz.id):
                if order.status in ("pending", "ready"):
                    fail_order(tx, order, problem)
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
        owned(authz, account, "challenge")
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
                change(tx, Kind.AUTHORIZATION, authz, "expired")
            if authz.status != "pending":
                raise malformed(f"the authorization is {authz.status}, not pending")
            change(tx, Kind.CHALLENGE, challenge, "processing", authz=authz.id, type=challenge.type)
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
            change(
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
                change(tx, Kind.AUTHORIZATION, authz, outcome)
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
            fail_order(
                tx,
                order,
                AcmeProblem(
                    reason.type,
                    f"authorization failed for {names}: {reason.detail}",
                    subproblems=subproblems,
                ),
            )
        elif all(a.status == "valid" for a in authzs):
            change(tx, Kind.ORDER, order, "ready")

    async def close(self) -> None:
        for task in list(self._validations):
            task.cancel()
        await asyncio.gather(*self._validations, return_exceptions=True)
        await self._va.close()
