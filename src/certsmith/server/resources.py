"""JSON views of the server's resources (RFC 8555 §7.1) and the URLs that name them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from certsmith.server.lifecycle import AuthorizationView, OrderView
from certsmith.server.storage.models import AccountRow, AuthorizationRow, ChallengeRow

ACME_PREFIX = "/acme"


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Urls:
    """Every URL the server hands out, from one base such as `https://ca.example:14000`."""

    base: str

    @property
    def directory(self) -> str:
        return f"{self.base}/directory"

    @property
    def new_nonce(self) -> str:
        return f"{self.base}{ACME_PREFIX}/new-nonce"

    @property
    def new_account(self) -> str:
        return f"{self.base}{ACME_PREFIX}/new-account"

    @property
    def new_order(self) -> str:
        return f"{self.base}{ACME_PREFIX}/new-order"

    @property
    def revoke_cert(self) -> str:
        return f"{self.base}{ACME_PREFIX}/revoke-cert"

    @property
    def key_change(self) -> str:
        return f"{self.base}{ACME_PREFIX}/key-change"

    @property
    def account_prefix(self) -> str:
        return f"{self.base}{ACME_PREFIX}/acct/"

    def account(self, account_id: str) -> str:
        return self.account_prefix + account_id

    def orders(self, account_id: str) -> str:
        return f"{self.account(account_id)}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.base}{ACME_PREFIX}/order/{order_id}"

    def finalize(self, order_id: str) -> str:
        return f"{self.order(order_id)}/finalize"

    def authorization(self, authz_id: str) -> str:
        return f"{self.base}{ACME_PREFIX}/authz/{authz_id}"

    def challenge(self, challenge_id: str) -> str:
        return f"{self.base}{ACME_PREFIX}/chall/{challenge_id}"

    def certificate(self, certificate_id: str, alternate: int = 0) -> str:
        base = f"{self.base}{ACME_PREFIX}/cert/{certificate_id}"
        return f"{base}/{alternate}" if alternate else base


def account_json(urls: Urls, account: AccountRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": account.status,
        "contact": account.contact,
        "orders": urls.orders(account.id),
    }
    if account.tos_agreed:
        body["termsOfServiceAgreed"] = True
    return body


def order_json(urls: Urls, view: OrderView) -> dict[str, Any]:
    order = view.order
    body: dict[str, Any] = {
        "status": order.status,
        "expires": rfc3339(order.expires),
        "identifiers": order.identifiers,
        "authorizations": [urls.authorization(a) for a in view.authorization_ids],
        "finalize": urls.finalize(order.id),
    }
    if order.certificate_id:
        body["certificate"] = urls.certificate(order.certificate_id)
    if order.error:
        body["error"] = order.error
    return body


def challenge_json(urls: Urls, challenge: ChallengeRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": challenge.type,
        "url": urls.challenge(challenge.id),
        "status": challenge.status,
        "token": challenge.token,
    }
    if challenge.validated is not None:
        body["validated"] = rfc3339(challenge.validated)
    if challenge.error is not None:
        body["error"] = challenge.error
    if challenge.validation_record:
        body["validationRecord"] = challenge.validation_record
    return body


def authorization_json(urls: Urls, view: AuthorizationView) -> dict[str, Any]:
    authz: AuthorizationRow = view.authorization
    challenges = view.challenges
    if authz.status == "valid":
        # RFC 8555 §7.1.4: a valid authorization lists the challenge that validated it.
        challenges = [c for c in challenges if c.status == "valid"] or challenges
    body: dict[str, Any] = {
        "identifier": {"type": authz.identifier_type, "value": authz.identifier_value},
        "status": authz.status,
        "expires": rfc3339(authz.expires),
        "challenges": [challenge_json(urls, c) for c in challenges],
    }
    if authz.wildcard:
        body["wildcard"] = True
    return body
