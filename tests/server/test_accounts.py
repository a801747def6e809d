"""Account life cycle over HTTPS: lookup, update, key rollover, deactivation (RFC 8555 §7.3)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from certsmith.acme.jose import sign_jws
from tests.acmetest import Acme, new_key
from tests.server.dbsnapshot import snapshot
from tests.server.test_bad_input import assert_problem
from tests.support import CaServer


@pytest.fixture
def acme(ca_server: CaServer) -> Iterator[Acme]:
    client = Acme(ca_server.directory, ca_server.root)
    assert client.register(contact=["mailto:one@example.org"]).status_code == 201
    yield client
    client.close()


def test_existing_key_returns_the_same_account(acme: Acme) -> None:
    again = acme.post(acme.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True)
    assert again.status_code == 200
    assert again.headers["Location"] == acme.kid
    only = acme.post(acme.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert only.status_code == 200
    assert only.headers["Location"] == acme.kid


def test_contact_update_and_post_as_get(acme: Acme) -> None:
    updated = acme.post(acme.kid or "", {"contact": ["mailto:two@example.org"]})
    assert updated.json()["contact"] == ["mailto:two@example.org"]
    assert acme.get(acme.kid or "").json()["contact"] == ["mailto:two@example.org"]


@pytest.mark.parametrize(
    ("contact", "code"),
    [
        pytest.param(["tel:+123"], "unsupportedContact", id="tel"),
        pytest.param(["mailto:a@b.test?subject=x"], "invalidContact", id="hfields"),
        pytest.param(["mailto:nobody"], "invalidContact", id="no-at"),
        pytest.param("mailto:a@b.test", "malformed", id="not-a-list"),
    ],
)
def test_bad_contact_update_changes_nothing(
    ca_server: CaServer, acme: Acme, contact: Any, code: str
) -> None:
    before = snapshot(ca_server.data_dir)
    assert_problem(acme.post(acme.kid or "", {"contact": contact}), code, 400)
    assert snapshot(ca_server.data_dir) == before


def _key_change(
    acme: Acme,
    new: Any,
    *,
    old: Any = None,
    account: str | None = None,
    inner_url: str | None = None,
) -> Any:
    url = acme.directory["keyChange"]
    inner = sign_jws(
        {
            "account": account or acme.kid,
            "oldKey": (old or acme.key).as_dict(private=False),
        },
        new,
        url=inner_url or url,
        nonce=None,
    )
    return acme.post(url, json.dumps(inner).encode())


def test_key_rollover(ca_server: CaServer, acme: Acme) -> None:
    old_key, new = acme.key, new_key()
    response = _key_change(acme, new)
    assert response.status_code == 200, response.text
    # The old key no longer signs for the account; the new one does.
    assert_problem(acme.get(acme.kid or ""), "malformed", 400)
    acme.key = new
    assert acme.get(acme.kid or "").status_code == 200
    lookup = acme.post(acme.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert lookup.headers["Location"] == acme.kid
    stale = acme.post(
        acme.directory["newAccount"], {"onlyReturnExisting": True}, key=old_key, use_jwk=True
    )
    assert_problem(stale, "accountDoesNotExist", 400)


def test_key_rollover_to_a_taken_key_is_a_conflict(ca_server: CaServer, acme: Acme) -> None:
    other = Acme(ca_server.directory, ca_server.root)
    other.register()
    before = snapshot(ca_server.data_dir)
    response = _key_change(acme, other.key)
    assert_problem(response, "malformed", 409)
    assert response.headers["Location"] == other.kid
    assert snapshot(ca_server.data_dir) == before
    other.close()


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param("wrong-old-key", id="wrong-old-key"),
        pytest.param("wrong-account", id="wrong-account"),
        pytest.param("wrong-inner-url", id="wrong-inner-url"),
    ],
)
def test_bad_key_rollover_changes_nothing(ca_server: CaServer, acme: Acme, variant: str) -> None:
    before = snapshot(ca_server.data_dir)
    new = new_key()
    if variant == "wrong-old-key":
        response = _key_change(acme, new, old=new_key())
        assert_problem(response, "unauthorized", 403)
    elif variant == "wrong-account":
        response = _key_change(acme, new, account=(acme.kid or "") + "x")
        assert_problem(response, "unauthorized", 403)
    else:
        response = _key_change(acme, new, inner_url=acme.directory["newOrder"])
        assert_problem(response, "malformed", 400)
    assert snapshot(ca_server.data_dir) == before


def test_deactivation_deactivates_pending_authorizations(acme: Acme) -> None:
    order = acme.new_order("deact.test").json()
    authz_url = order["authorizations"][0]
    assert acme.get(authz_url).json()["status"] == "pending"
    response = acme.post(acme.kid or "", {"status": "deactivated"})
    assert response.json()["status"] == "deactivated"
    assert_problem(acme.get(authz_url), "unauthorized", 403)
    assert_problem(acme.get(acme.kid or ""), "unauthorized", 403)


def test_authorization_deactivation_fails_its_order(acme: Acme) -> None:
    response = acme.new_order("authz-deact.test")
    order_url, authz_url = response.headers["Location"], response.json()["authorizations"][0]
    deactivated = acme.post(authz_url, {"status": "deactivated"})
    assert deactivated.status_code == 200
    assert deactivated.json()["status"] == "deactivated"
    order = acme.get(order_url).json()
    assert order["status"] == "invalid"
    assert order["error"]["type"].endswith(":unauthorized")
    # A second deactivation is refused: deactivated is final (RFC 8555 §7.1.6).
    assert_problem(acme.post(authz_url, {"status": "deactivated"}), "malformed", 400)
    assert_problem(acme.post(authz_url, {"status": "valid"}), "malformed", 400)


def test_orders_list_is_paginated(ca_server: CaServer) -> None:
    """RFC 8555 §7.1.2.1: the orders list pages with Link rel="next"; every order once."""
    import re

    client = Acme(ca_server.directory, ca_server.root)
    client.register()
    created = [client.new_order(f"page{i}.test").headers["Location"] for i in range(53)]
    seen: list[str] = []
    url: str | None = client.get(client.kid or "").json()["orders"]
    pages = 0
    while url is not None:
        response = client.get(url)
        seen += response.json()["orders"]
        pages += 1
        match = re.search(r'<([^>]+)>;rel="next"', response.headers.get("Link", ""))
        url = match.group(1) if match else None
    assert pages == 2
    assert sorted(seen) == sorted(created)
    client.close()
