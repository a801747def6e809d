"""Transactions and the queries the server needs, on SQLAlchemy.

Each state change the server makes runs inside one `Store.transaction()`. PostgreSQL is
used through the async engine. SQLite runs on the synchronous engine inside the event
loop: its statements take microseconds against a local file, while handing each one to
aiosqlite's thread costs ~0.8 ms of CPU (measured), most of the server's cost per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from certsmith.server.storage.models import (
    AccountRow,
    AuthorizationRow,
    Base,
    CertificateRow,
    ChallengeRow,
    OrderAuthorizationRow,
    OrderRow,
    ServerSecretRow,
    UsedNonceRow,
)

RowT = TypeVar("RowT", bound=Base)


def new_id() -> str:
    """An unguessable, URL-safe resource id (96 random bits)."""
    return secrets.token_urlsafe(12)


class _InlineSession:
    """The slice of AsyncSession's interface Tx uses, over a synchronous Session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, row: Base) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        self._session.flush()

    async def get(self, model: type[RowT], row_id: str, **options: Any) -> RowT | None:
        return self._session.get(model, row_id, **options)

    async def execute(self, statement: Any) -> Result[Any]:
        return self._session.execute(statement)


class Tx:
    """One database transaction with the reads and writes the server uses."""

    def __init__(self, session: AsyncSession | _InlineSession, *, dialect: str) -> None:
        self.session = session
        # SQLite has no row locks (and needs none: its writers are serialised).
        self._lock_rows = dialect != "sqlite"
        self._dialect = dialect
        self.committed_callbacks: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this transaction has committed; never if it rolls back."""
        self.committed_callbacks.append(callback)

    def add(self, row: Base) -> None:
        self.session.add(row)

    async def flush(self) -> None:
        await self.session.flush()

    async def get(self, model: type[RowT], row_id: str, *, for_update: bool = False) -> RowT | None:
        return await self.session.get(model, row_id, with_for_update=for_update and self._lock_rows)

    async def account_by_thumbprint(self, thumbprint: str) -> AccountRow | None:
        result = await self.session.execute(
            select(AccountRow).where(AccountRow.key_thumbprint == thumbprint)
        )
        return result.scalar_one_or_none()

    async def certificate_by_serial(self, serial: str) -> CertificateRow | None:
        result = await self.session.execute(
            select(CertificateRow).where(CertificateRow.serial == serial)
        )
        return result.scalar_one_or_none()

    async def valid_authorizations(
        self, account_id: str, values: Sequence[str]
    ) -> list[AuthorizationRow]:
        result = await self.session.execute(
            select(AuthorizationRow).where(
                AuthorizationRow.account_id == account_id,
                AuthorizationRow.identifier_value.in_(values),
                AuthorizationRow.status == "valid",
            )
        )
        return list(result.scalars())

    async def reusable_authorization(
        self,
        account_id: str,
        identifier_type: str,
        value: str,
        wildcard: bool,
        *,
        valid_until: datetime,
    ) -> AuthorizationRow | None:
        result = await self.session.execute(
            select(AuthorizationRow)
            .where(
                AuthorizationRow.account_id == account_id,
                AuthorizationRow.identifier_value == value,
                AuthorizationRow.status == "valid",
                AuthorizationRow.identifier_type == identifier_type,
                AuthorizationRow.wildcard == wildcard,
                AuthorizationRow.expires > valid_until,
            )
            .order_by(AuthorizationRow.expires.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def pending_authorizations(self, account_id: str) -> list[AuthorizationRow]:
        result = await self.session.execute(
            select(AuthorizationRow).where(
                AuthorizationRow.account_id == account_id, AuthorizationRow.status == "pending"
            )
        )
        return list(result.scalars())

    async def authorizations_of_order(self, order_id: str) -> list[AuthorizationRow]:
        result = await self.session.execute(
            select(AuthorizationRow)
            .join(OrderAuthorizationRow)
            .where(OrderAuthorizationRow.order_id == order_id)
            .order_by(OrderAuthorizationRow.position)
        )
        return list(result.scalars())

    async def orders_of_authorization(self, authz_id: str) -> list[OrderRow]:
        result = await self.session.execute(
            select(OrderRow)
            .join(OrderAuthorizationRow)
            .where(OrderAuthorizationRow.authorization_id == authz_id)
        )
        return list(result.scalars())

    async def challenges_of(self, authz_ids: Sequence[str]) -> list[ChallengeRow]:
        result = await self.session.execute(
            select(ChallengeRow)
            .where(ChallengeRow.authorization_id.in_(authz_ids))
            .order_by(ChallengeRow.type)
        )
        return list(result.scalars())

    async def orders_of_account(
        self, account_id: str, *, after: str | None, limit: int
    ) -> list[OrderRow]:
        query = select(OrderRow).where(OrderRow.account_id == account_id)
        if after is not None:
            query = query.where(OrderRow.id > after)
        result = await self.session.execute(query.order_by(OrderRow.id).limit(limit))
        return list(result.scalars())

    async def all(self, model: type[RowT]) -> list[RowT]:
        result = await self.session.execute(select(model))
        return list(result.scalars())

    async def rows_in_status(self, model: type[RowT], status: str) -> list[RowT]:
        result = await self.session.execute(
            select(model).where(model.status == status)  # type: ignore[attr-defined]
        )
        return list(result.scalars())

    async def redeem_nonce(self, value: str, expires_at: int) -> bool:
        """Record `value` as used; False if it was used before."""
        # An INSERT that skips duplicates costs half of an ORM add inside a savepoint.
        insert = sqlite_insert if self._dialect == "sqlite" else postgresql_insert
        statement = insert(UsedNonceRow).values(value=value, expires_at=expires_at)
        result = await self.session.execute(statement.on_conflict_do_nothing())
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def purge_used_nonces(self, now: int) -> None:
        await self.session.execute(delete(UsedNonceRow).where(UsedNonceRow.expires_at < now))

    async def secret(self, name: str, create: bytes) -> bytes:
        """The shared secret `name`, stored as `create` if no process stored one first."""
        insert = sqlite_insert if self._dialect == "sqlite" else postgresql_insert
        # Processes starting together race to store it; the first insert wins, all read it.
        await self.session.execute(
            insert(ServerSecretRow).values(name=name, value=create).on_conflict_do_nothing()
        )
        result = await self.session.execute(
            select(ServerSecretRow.value).where(ServerSecretRow.name == name)
        )
        return bytes(result.scalar_one())


class Store:
    """The database behind one server process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._engine: Engine | None = None
        self._async_engine: AsyncEngine | None = None
        if self.is_sqlite:
            sync_url = url.replace("sqlite+aiosqlite:", "sqlite:", 1)
            self._engine = create_engine(sync_url, connect_args={"timeout": 30})
            event.listen(self._engine, "connect", _sqlite_pragmas)
        else:
            self._async_engine = create_async_engine(url)
        # SQLite has one writer; serialising writers here avoids "database is locked".
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        engine = self._engine or self._async_engine
        assert engine is not None
        return engine.dialect.name

    @contextlib.asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        """One transaction; committed on normal exit, rolled back on an exception."""
        lock = self._write_lock if write and self._write_lock else contextlib.nullcontext()
        async with lock:
            if self._engine is not None:
                with Session(self._engine, expire_on_commit=False) as session, session.begin():
                    tx = Tx(_InlineSession(session), dialect="sqlite")
                    yield tx
            else:
                assert self._async_engine is not None
                asession = AsyncSession(self._async_engine, expire_on_commit=False)
                tx = Tx(asession, dialect=self.dialect)
                async with asession, asession.begin():
                    yield tx
        for callback in tx.committed_callbacks:
            callback()

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from certsmith.server.storage.migrate import upgrade_to_head

        if self._engine is not None:
            with self._engine.begin() as conn:
                upgrade_to_head(conn)
        else:
            assert self._async_engine is not None
            async with self._async_engine.begin() as conn:
                await conn.run_sync(upgrade_to_head)

    async def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._async_engine is not None:
            await self._async_engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; NORMAL sync is durable across process
    # crashes in WAL mode, which is the failure the CA must survive.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
