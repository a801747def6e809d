"""What the RA's parts share: resource views, checked state moves, expiry, ownership.

Every state move goes through `change`, which refuses what RFC 8555 §7.1.6 forbids and
logs the move once its transaction commits.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certsmith.acme.problems import AcmeProblem, ProblemType, not_found, unauthorized
from certsmith.server.events import log_event
from certsmith.server.states import Kind, check_transition
from certsmith.server.storage import Tx
from certsmith.server.storage.models import AccountRow, AuthorizationRow, ChallengeRow, OrderRow


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


def event(tx: Tx, name: str, **fields: Any) -> None:
    """Log a state change once its transaction has committed, so logs never lie."""
    tx.after_commit(functools.partial(log_event, name, **fields))


def change(tx: Tx, kind: Kind, row: Any, new: str, **fields: Any) -> None:
    """Move `row` to `new` if RFC 8555 §7.1.6 allows it, and log the move."""
    check_transition(kind, row.status, new)
    row.status = new
    prefix = _EVENT_PREFIX[kind]
    event(tx, f"{prefix}.{new}", **{prefix: row.id}, **fields)


def owned(row: Any, account: AccountRow, what: str) -> None:
    if row is None:
        raise not_found(f"no such {what}")
    if row.account_id != account.id:
        raise unauthorized(f"this {what} belongs to another account")


def fail_order(tx: Tx, order: OrderRow, problem: AcmeProblem) -> None:
    change(tx, Kind.ORDER, order, "invalid", error=problem.type.code)
    order.error = problem.to_dict()


def expire(tx: Tx, order: OrderRow, authzs: list[AuthorizationRow], now: datetime) -> None:
    """Apply expiry lazily, as part of whatever transaction is reading the rows."""
    for authz in authzs:
        if authz.status in ("pending", "valid") and authz.expires <= now:
            change(tx, Kind.AUTHORIZATION, authz, "expired")
    if order.status in ("pending", "ready") and order.expires <= now:
        fail_order(tx, order, AcmeProblem(ProblemType.MALFORMED, "order expired"))


def has_expired(order: OrderRow, authzs: list[AuthorizationRow], now: datetime) -> bool:
    if order.status in ("pending", "ready") and order.expires <= now:
        return True
    return any(a.status in ("pending", "valid") and a.expires <= now for a in authzs)
