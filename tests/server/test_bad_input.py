"""Bad requests over real HTTPS get the RFC 8555 problem document and change nothing."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from certsmith.acme.jose import b64url_encode
from certsmith.acme.keys import generate_private_key
from tests.acmetest import Acme, Http01Responder, csr_b64, new_key, sign_with_header
from tests.server.dbsnapshot import snapshot
from tests.support import CaServer

ERR = "urn:ietf:params:acme:error:"


def assert_problem(response: httpx.Response, code: str, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == ERR + code, body
    assert body["status"] == status
    assert body["detail"]
    # Every response, errors included, carries a fresh nonce (RFC 8555 §6.5).
    assert response.headers["Replay-Nonce"]
    return body


@pytest.fixture
def acme(ca_server: CaServer) -> Iterator[Acme]:
    client = Acme(ca_server.directory, ca_server.root)
    assert client.register(contact=["mailto:bad@example.org"]).status_code == 201
    yield client
    client.close()


@pytest.fixture
def unchanged(ca_server: CaServer) -> Iterator[None]:
    """Fails the test if the database differs after it from before it."""
    before = snapshot(ca_server.data_dir)
    yield
    assert snapshot(ca_server.data_dir) == before


def test_bad_nonce(acme: Acme, unchanged: None) -> None:
    response = acme.post(acme.directory["newOrder"], {"identifiers": []}, nonce="AAAA")
    assert_problem(response, "badNonce", 400)


def test_forged_nonce(acme: Acme, unchanged: None) -> None:
    real = acme.nonce()
    forged = real[:-2] + ("AA" if not real.endswith("AA") else "BB")
    response = acme.post(acme.kid or "", None, nonce=forged)
    assert_problem(response, "badNonce", 400)


def test_reused_nonce(acme: Acme, unchanged: None) -> None:
    nonce = acme.nonce()
    assert acme.post(acme.kid or "", None, nonce=nonce).status_code == 200
    assert_problem(acme.post(acme.kid or "", None, nonce=nonce), "badNonce", 400)


def test_missing_nonce(acme: Acme, unchanged: None) -> None:
    url = acme.directory["newOrder"]
    body = sign_with_header(
        {"alg": "ES256", "kid": acme.kid, "url": url}, b'{"identifiers": []}', acme.key
    )
    response = acme.http.post(url, json=body, headers={"Content-Type": "application/jose+json"})
    assert_problem(response, "badNonce", 400)


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("application/json", id="json"),
        pytest.param("text/plain", id="text"),
        pytest.param("", id="none"),
    ],
)
def test_wrong_content_type(acme: Acme, unchanged: None, content_type: str) -> None:
    response = acme.post(acme.kid or "", None, content_type=content_type)
    assert_problem(response, "malformed", 415)


def test_url_mismatch(acme: Acme, unchanged: None) -> None:
    url = acme.directory["newOrder"]
    body = sign_with_header(
        {"alg": "ES256", "kid": acme.kid, "nonce": acme.nonce(), "url": url + "x"},
        json.dumps({"identifiers": [{"type": "dns", "value": "x.test"}]}).encode(),
        acme.key,
    )
    response = acme.http.post(url, json=body, headers={"Content-Type": "application/jose+json"})
    assert_problem(response, "unauthorized", 403)


def test_jwk_and_kid_together(acme: Acme, unchanged: None) -> None:
    url = acme.directory["newOrder"]
    header = {
        "alg": "ES256",
        "kid": acme.kid,
        "jwk": acme.key.as_dict(private=False),
        "nonce": acme.nonce(),
        "url": url,
    }
    body = sign_with_header(
        header, b'{"identifiers": [{"type": "dns", "value": "x.test"}]}', acme.key
    )
    response = acme.http.post(url, json=body, headers={"Content-Type": "application/jose+json"})
    assert_problem(response, "malformed", 400)


def test_unknown_account(ca_server: CaServer, acme: Acme, unchanged: None) -> None:
    stranger = Acme(ca_server.directory, ca_server.root)
    kid = acme.kid.rsplit("/", 1)[0] + "/doesnotexist"  # type: ignore[union-attr]
    response = stranger.post(stranger.directory["newOrder"], {"identifiers": []}, kid=kid)
    assert_problem(response, "accountDoesNotExist", 400)
    stranger.close()


def test_only_return_existing_for_unknown_key(acme: Acme, unchanged: None) -> None:
    response = acme.post(
        acme.directory["newAccount"], {"onlyReturnExisting": True}, key=new_key(), use_jwk=True
    )
    assert_problem(response, "accountDoesNotExist", 400)


def test_bad_signature(acme: Acme, unchanged: None) -> None:
    def tamper(jws: dict[str, str]) -> dict[str, str]:
        payload = b64url_encode(b'{"identifiers": [{"type": "dns", "value": "evil.test"}]}')
        return {**jws, "payload": payload}

    response = (
        acme.new_order("x.test")
        if False
        else acme.post(
            acme.directory["newOrder"],
            {"identifiers": [{"type": "dns", "value": "good.test"}]},
            mutate=tamper,
        )
    )
    assert_problem(response, "malformed", 400)


def test_signed_by_another_key(acme: Acme, unchanged: None) -> None:
    response = acme.post(acme.directory["newOrder"], {"identifiers": []}, key=new_key())
    assert_problem(response, "malformed", 400)


def test_algorithm_does_not_fit_account_key(acme: Acme, unchanged: None) -> None:
    response = acme.post(acme.directory["newOrder"], {"identifiers": []}, key=new_key("RSA"))
    body = assert_problem(response, "badSignatureAlgorithm", 400)
    assert "ES256" in body["algorithms"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'{"protected": 1, "payload": "", "signature": ""}', id="types"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_garbage_body(acme: Acme, unchanged: None, raw: bytes) -> None:
    response = acme.http.post(
        acme.directory["newOrder"], content=raw, headers={"Content-Type": "application/jose+json"}
    )
    assert_problem(response, "malformed", 400)


def test_oversized_body(acme: Acme, unchanged: None) -> None:
    response = acme.http.post(
        acme.directory["newOrder"],
        content=b"{" + b" " * 200_000 + b"}",
        headers={"Content-Type": "application/jose+json"},
    )
    assert_problem(response, "malformed", 400)


@pytest.mark.parametrize(
    ("names", "code"),
    [
        pytest.param(["single"], "rejectedIdentifier", id="single-label"),
        pytest.param(["a..b.test"], "rejectedIdentifier", id="empty-label"),
        pytest.param(["*.*.wild.test"], "rejectedIdentifier", id="double-wildcard"),
        pytest.param(["a.*.wild.test"], "rejectedIdentifier", id="inner-wildcard"),
        pytest.param(["*.test"], "rejectedIdentifier", id="wildcard-tld"),
        pytest.param(["127.0.0.2"], "rejectedIdentifier", id="ip-as-dns"),
        pytest.param(["ok.test", "bad_name.test", "-x.test"], "rejectedIdentifier", id="two-bad"),
    ],
)
def test_rejected_identifiers(acme: Acme, unchanged: None, names: list[str], code: str) -> None:
    body = assert_problem(acme.new_order(*names), code, 400)
    bad = [n for n in names if n != "ok.test"]
    if len(bad) > 1:
        assert [s["identifier"]["value"] for s in body["subproblems"]] == bad


def test_unsupported_identifier_type(acme: Acme, unchanged: None) -> None:
    payload = {"identifiers": [{"type": "email", "value": "a@example.org"}]}
    assert_problem(acme.post(acme.directory["newOrder"], payload), "unsupportedIdentifier", 400)


def test_get_on_post_endpoint(acme: Acme) -> None:
    response = acme.http.get(acme.directory["newOrder"])
    assert_problem(response, "malformed", 405)


def test_unknown_path(acme: Acme) -> None:
    response = acme.http.get(acme.directory["newOrder"].rsplit("/", 1)[0] + "/nothing-here")
    assert_problem(response, "malformed", 404)


def test_no_terms_agreement(ca_server: CaServer, unchanged: None) -> None:
    client = Acme(ca_server.directory, ca_server.root)
    response = client.post(client.directory["newAccount"], {}, use_jwk=True)
    assert_problem(response, "malformed", 400)
    client.close()


def test_weak_account_key(ca_server: CaServer, unchanged: None) -> None:
    from joserfc.jwk import RSAKey

    with warnings.catch_warnings():
        # joserfc warns about the weak key, which is the point of this test.
        warnings.simplefilter("ignore")
        weak = RSAKey.generate_key(1024)
        client = Acme(ca_server.directory, ca_server.root, key=weak)
        response = client.post(
            client.directory["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True
        )
    assert_problem(response, "badPublicKey", 400)
    client.close()


def test_other_accounts_order(ca_server: CaServer, acme: Acme) -> None:
    response = acme.new_order("mine.test")
    order_url = response.headers["Location"]
    other = Acme(ca_server.directory, ca_server.root)
    other.register()
    before = snapshot(ca_server.data_dir)
    assert_problem(other.get(order_url), "unauthorized", 403)
    assert_problem(other.post(response.json()["finalize"], {"csr": "AAAA"}), "badCSR", 400)
    assert snapshot(ca_server.data_dir) == before
    other.close()


def test_post_as_get_with_payload(acme: Acme) -> None:
    order_url = acme.new_order("payload.test").headers["Location"]
    assert_problem(acme.post(order_url, {"status": "valid"}), "malformed", 400)


def test_finalize_before_ready(ca_server: CaServer, acme: Acme) -> None:
    response = acme.new_order("early.test")
    order = response.json()
    before = snapshot(ca_server.data_dir)
    csr = csr_b64(generate_private_key("ec256"), ["early.test"])
    assert_problem(acme.post(order["finalize"], {"csr": csr}), "orderNotReady", 403)
    assert snapshot(ca_server.data_dir) == before
    assert acme.get(response.headers["Location"]).json()["status"] == "pending"


@pytest.mark.parametrize(
    ("csr_names", "key_kind", "code"),
    [
        pytest.param(["other.test"], "ec256", "badCSR", id="other-name"),
        pytest.param(["csr.test", "extra.test"], "ec256", "badCSR", id="extra-name"),
        pytest.param(["csr.test"], "rsa1024", "badCSR", id="weak-key"),
        pytest.param(["csr.test"], "account", "badCSR", id="account-key"),
    ],
)
def test_finalize_with_bad_csr(
    ca_server: CaServer, acme: Acme, csr_names: list[str], key_kind: str, code: str
) -> None:
    response = acme.new_order("csr.test")
    order = response.json()
    order["url"] = response.headers["Location"]
    with Http01Responder(ca_server.http01_port) as responder:
        order = acme.solve_and_wait(order, responder)
    assert order["status"] == "ready"
    if key_kind == "account":
        key: Any = acme.key.private_key
    elif key_kind == "rsa1024":
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 -- the weak key is the point
    else:
        key = generate_private_key(key_kind)
    before = snapshot(ca_server.data_dir)
    assert_problem(acme.post(order["finalize"], {"csr": csr_b64(key, csr_names)}), code, 400)
    assert snapshot(ca_server.data_dir) == before
    assert acme.get(order["url"]).json()["status"] == "ready"


def test_deactivated_account_is_refused(ca_server: CaServer, acme: Acme) -> None:
    deactivated = acme.post(acme.kid or "", {"status": "deactivated"})
    assert deactivated.json()["status"] == "deactivated"
    before = snapshot(ca_server.data_dir)
    assert_problem(acme.new_order("after.test"), "unauthorized", 403)
    assert_problem(acme.register(), "unauthorized", 403)
    assert snapshot(ca_server.data_dir) == before


# --- regressions from the adversarial review ---


@pytest.mark.parametrize(
    "contact_json",
    [
        pytest.param(r'"mailto:\ud800@example.com"', id="lone-surrogate"),
        pytest.param(r'"mailto:a\u0000b@example.com"', id="nul"),
        pytest.param(r'"mailto:jos\u00e9@example.com"', id="non-ascii"),
        pytest.param(r'"mailto:\"a\\\"@example.com"', id="quoted"),
    ],
)
def test_bad_contact_bytes_change_nothing(
    ca_server: CaServer, unchanged: None, contact_json: str
) -> None:
    client = Acme(ca_server.directory, ca_server.root)
    raw = ('{"termsOfServiceAgreed": true, "contact": [' + contact_json + "]}").encode()
    response = client.post(client.directory["newAccount"], raw, use_jwk=True)
    assert response.status_code == 400, response.text
    assert response.json()["type"] in (ERR + "malformed", ERR + "invalidContact")
    client.close()


def test_deeply_nested_json(acme: Acme, unchanged: None) -> None:
    body = b"[" * 30000 + b"]" * 30000
    response = acme.http.post(
        acme.directory["newOrder"], content=body, headers={"Content-Type": "application/jose+json"}
    )
    assert_problem(response, "malformed", 400)
    nested = acme.post(acme.directory["newOrder"], b'{"a":' * 5000 + b"1" + b"}" * 5000)
    assert_problem(nested, "malformed", 400)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"identifiers": NaN}', id="nan"),
        pytest.param('{"identifiers": []}'.encode("utf-16"), id="utf-16"),
    ],
)
def test_payload_that_is_not_json_text(acme: Acme, unchanged: None, raw: bytes) -> None:
    assert_problem(acme.post(acme.directory["newOrder"], raw), "malformed", 400)


def test_only_return_existing_must_be_boolean(acme: Acme, unchanged: None) -> None:
    response = acme.post(
        acme.directory["newAccount"],
        {"onlyReturnExisting": "true", "termsOfServiceAgreed": True},
        key=new_key(),
        use_jwk=True,
    )
    assert_problem(response, "malformed", 400)


def test_huge_alternate_index_and_trailing_slash(acme: Acme) -> None:
    base = acme.directory["newOrder"].rsplit("/", 1)[0]
    assert_problem(acme.post(f"{base}/cert/x/{'9' * 5000}", None), "malformed", 404)
    assert_problem(acme.post((acme.kid or "") + "/", None), "malformed", 404)


def test_method_not_allowed_names_allowed_methods(acme: Acme) -> None:
    response = acme.http.get(acme.directory["newAccount"])
    assert_problem(response, "malformed", 405)
    assert response.headers["Allow"] == "POST"


def test_reserved_label(acme: Acme, unchanged: None) -> None:
    assert_problem(acme.new_order("ab--cd.test"), "rejectedIdentifier", 400)
