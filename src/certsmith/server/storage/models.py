"""The database schema. Alembic migrations under `migrations/` must match it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, so SQLite and PostgreSQL behave alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class AccountRow(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_thumbprint: Mapped[str] = mapped_column(String(64), unique=True)
    jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    contact: Mapped[list[str]] = mapped_column(JSON)
    tos_agreed: Mapped[bool] = mapped_column(Boolean)
    # Which terms the account agreed to (ServerConfig.terms_version); NULL for accounts
    # made before versions were recorded, which are taken to have agreed to the current.
    terms_version: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderRow(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(16))
    identifiers: Mapped[list[dict[str, str]]] = mapped_column(JSON)
    expires: Mapped[datetime] = mapped_column(UtcDateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    certificate_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    __table_args__ = (Index("ix_orders_account_created", "account_id", "created_at"),)


class AuthorizationRow(Base):
    __tablename__ = "authorizations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    identifier_type: Mapped[str] = mapped_column(String(8))
    identifier_value: Mapped[str] = mapped_column(String(255))
    wildcard: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    expires: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    __table_args__ = (
        Index("ix_authz_account_identifier", "account_id", "identifier_value", "status"),
    )


class OrderAuthorizationRow(Base):
    __tablename__ = "order_authorizations"
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    authorization_id: Mapped[str] = mapped_column(
        ForeignKey("authorizations.id"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class ChallengeRow(Base):
    __tablename__ = "challenges"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    authorization_id: Mapped[str] = mapped_column(ForeignKey("authorizations.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    validated: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    validation_record: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)


class CertificateRow(Base):
    __tablename__ = "certificates"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"))
    chain_pem: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revocation_reason: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UsedNonceRow(Base):
    """Nonces already redeemed; rows older than the nonce lifetime are purged."""

    __tablename__ = "used_nonces"
    value: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


class ServerSecretRow(Base):
    """Secrets every server process sharing this database must agree on (nonce HMAC key)."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


class EabKeyRow(Base):
    """External Account Binding MAC keys (RFC 8555 §7.3.4), issued by the operator."""

    __tablename__ = "eab_keys"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hmac_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    comment: Mapped[str] = mapped_column(String(200), default="")
