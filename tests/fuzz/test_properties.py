"""Property tests: random and mutated input always yields a 4xx problem document.

At the unit level parsers raise only AcmeProblem; over HTTP the server never answers 5xx
and a refused request never changes the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certsmith.acme.identifiers import parse_identifier
from certsmith.acme.jose import b64url_encode, parse_jws, sign_jws
from certsmith.acme.problems import AcmeProblem
from certsmith.server.policy import IdentifierPolicy
from tests.acmetest import Acme, new_key, sign_with_header
from tests.server.dbsnapshot import snapshot
from tests.support import CaServer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
b64_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .")
HTTP = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- unit level: parsers fail only with AcmeProblem ---


@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_parse_jws_raises_only_problems(body: bytes) -> None:
    try:
        parse_jws(body)
    except AcmeProblem as problem:
        assert 400 <= problem.http_status < 500


@given(st.dictionaries(st.sampled_from(["protected", "payload", "signature", "x"]), b64_text))
def test_parse_jws_members_raise_only_problems(doc: dict[str, str]) -> None:
    try:
        parse_jws(json.dumps(doc).encode())
    except AcmeProblem as problem:
        assert 400 <= problem.http_status < 500


@given(json_values)
def test_parse_identifier_raises_only_problems(raw: Any) -> None:
    try:
        parse_identifier(raw)
    except AcmeProblem as problem:
        assert 400 <= problem.http_status < 500


@given(st.fixed_dictionaries({"type": st.sampled_from(["dns", "ip"]), "value": st.text()}))
def test_identifier_policy_raises_only_problems(raw: dict[str, str]) -> None:
    policy = IdentifierPolicy((), 100)
    try:
        accepted = policy.check_order([raw])
    except AcmeProblem as problem:
        assert 400 <= problem.http_status < 500
    else:
        # Whatever passes is normalised: a second pass leaves it unchanged.
        again = policy.check_order([accepted[0].to_dict()])
        assert again == accepted


# --- HTTP level: a real server, a real database ---


@pytest.fixture(scope="module")
def fuzz_acme(ca_server: CaServer) -> Iterator[Acme]:
    client = Acme(ca_server.directory, ca_server.root)
    assert client.register().status_code == 201
    yield client
    client.close()


def _check_refusal(ca_server: CaServer, response: Any, before: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["type"].startswith("urn:ietf:params:acme:error:")
        assert snapshot(ca_server.data_dir) == before


mutations = st.sampled_from(["drop", "replace", "flip", "extra", "swap"])


@HTTP
@given(
    mutation=mutations,
    member=st.sampled_from(["protected", "payload", "signature"]),
    junk=b64_text,
    position=st.integers(min_value=0, max_value=400),
)
def test_mutated_jws_is_refused_cleanly(
    ca_server: CaServer, fuzz_acme: Acme, mutation: str, member: str, junk: str, position: int
) -> None:
    url = fuzz_acme.directory["newOrder"]
    body: dict[str, Any] = sign_jws(
        {"identifiers": [{"type": "dns", "value": "fuzz.test"}]},
        fuzz_acme.key,
        url=url,
        nonce=fuzz_acme.nonce(),
        kid=fuzz_acme.kid,
    )
    if mutation == "drop":
        del body[member]
    elif mutation == "replace":
        body[member] = junk
    elif mutation == "flip":
        value = body[member]
        i = position % max(len(value), 1)
        body[member] = value[:i] + ("A" if value[i : i + 1] != "A" else "B") + value[i + 1 :]
    elif mutation == "extra":
        body[junk or "x"] = junk
    else:
        body[member] = body["protected" if member != "protected" else "payload"]
    before = snapshot(ca_server.data_dir)
    response = fuzz_acme.http.post(
        url, content=json.dumps(body), headers={"Content-Type": "application/jose+json"}
    )
    if response.status_code == 201:
        return  # the mutation happened to leave a valid request (e.g. an ignored member)
    _check_refusal(ca_server, response, before)


@HTTP
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "jwk", "nonce", "url", "crit", "b64", "typ", "x5c"]),
        json_values,
        max_size=6,
    )
)
def test_arbitrary_protected_headers_are_refused_cleanly(
    ca_server: CaServer, fuzz_acme: Acme, header: dict[str, Any]
) -> None:
    url = fuzz_acme.directory["newOrder"]
    header = {"alg": "ES256", **header}
    if not isinstance(header.get("alg"), str):
        header["alg"] = "ES256"
    try:
        body = sign_with_header(header, b"{}", fuzz_acme.key)
    except Exception:  # joserfc refuses to sign some headers; nothing to send then
        return
    before = snapshot(ca_server.data_dir)
    response = fuzz_acme.http.post(
        url, content=json.dumps(body), headers={"Content-Type": "application/jose+json"}
    )
    assert response.status_code >= 400
    _check_refusal(ca_server, response, before)


@HTTP
@given(payload=json_values)
def test_arbitrary_new_order_payloads(ca_server: CaServer, fuzz_acme: Acme, payload: Any) -> None:
    before = snapshot(ca_server.data_dir)
    raw = json.dumps(payload).encode()
    response = fuzz_acme.post(fuzz_acme.directory["newOrder"], raw)
    if response.status_code == 201:
        return
    _check_refusal(ca_server, response, before)


@HTTP
@given(
    identifiers=st.lists(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["dns", "ip", "email"]), "value": st.text()}
        ),
        min_size=1,
        max_size=3,
    )
)
def test_arbitrary_identifiers(
    ca_server: CaServer, fuzz_acme: Acme, identifiers: list[dict[str, str]]
) -> None:
    before = snapshot(ca_server.data_dir)
    response = fuzz_acme.post(fuzz_acme.directory["newOrder"], {"identifiers": identifiers})
    if response.status_code == 201:
        return
    _check_refusal(ca_server, response, before)


@HTTP
@given(payload=json_values)
def test_arbitrary_new_account_payloads(ca_server: CaServer, fuzz_acme: Acme, payload: Any) -> None:
    before = snapshot(ca_server.data_dir)
    response = fuzz_acme.post(
        fuzz_acme.directory["newAccount"],
        json.dumps(payload).encode(),
        key=new_key(),
        use_jwk=True,
    )
    if response.status_code == 201:
        return
    _check_refusal(ca_server, response, before)


def test_b64_helper_round_trip() -> None:
    assert b64url_encode(b"\xff\xfe") == "__4"
