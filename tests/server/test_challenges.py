"""dns-01, tls-alpn-01, wildcards and IP identifiers end to end over real sockets."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography import x509

from certsmith.acme.challenges import dns01_record_name, dns01_txt_value
from certsmith.acme.keys import build_csr, generate_private_key
from tests.acmetest import Acme, TlsAlpnResponder
from tests.server.test_bad_input import assert_problem
from tests.support import CaServer, ChallTestSrv


@pytest.fixture
def acme(ca_server: CaServer) -> Iterator[Acme]:
    client = Acme(ca_server.directory, ca_server.root)
    assert client.register().status_code == 201
    yield client
    client.close()


def _order(acme: Acme, identifiers: list[dict[str, str]]) -> dict[str, Any]:
    response = acme.post(acme.directory["newOrder"], {"identifiers": identifiers})
    assert response.status_code == 201, response.text
    return {**response.json(), "url": response.headers["Location"]}


def _authzs(acme: Acme, order: dict[str, Any]) -> list[dict[str, Any]]:
    return [acme.get(url).json() for url in order["authorizations"]]


def _challenge(authz: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in authz["challenges"] if c["type"] == kind)


def _finalize(
    acme: Acme, order: dict[str, Any], dns: list[str], ips: list[str]
) -> x509.Certificate:
    from cryptography.hazmat.primitives.serialization import Encoding

    from certsmith.acme.jose import b64url_encode

    csr = build_csr(generate_private_key("ec256"), dns, ip_addresses=ips)
    response = acme.post(order["finalize"], {"csr": b64url_encode(csr.public_bytes(Encoding.DER))})
    assert response.status_code == 200, response.text
    done = acme.poll(order["url"], until=lambda o: o["status"] == "valid")
    return x509.load_pem_x509_certificates(acme.get(done["certificate"]).content)[0]


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName)), sorted(
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    )


def test_challenges_offered_per_identifier(acme: Acme) -> None:
    order = _order(
        acme,
        [
            {"type": "dns", "value": "offer.test"},
            {"type": "dns", "value": "*.offer.test"},
            {"type": "ip", "value": "127.0.0.9"},
        ],
    )
    offered = {
        (a["identifier"]["value"], a.get("wildcard", False)): sorted(
            c["type"] for c in a["challenges"]
        )
        for a in _authzs(acme, order)
    }
    assert offered == {
        ("offer.test", False): ["dns-01", "http-01", "tls-alpn-01"],
        ("offer.test", True): ["dns-01"],
        ("127.0.0.9", False): ["http-01", "tls-alpn-01"],
    }


def test_dns01_and_wildcard(acme: Acme, challtestsrv: ChallTestSrv) -> None:
    order = _order(
        acme,
        [
            {"type": "dns", "value": "*.wild.test"},
            {"type": "dns", "value": "wild.test"},
        ],
    )
    record = dns01_record_name("wild.test")
    try:
        for authz in _authzs(acme, order):
            challenge = _challenge(authz, "dns-01")
            challtestsrv.set_txt(
                record, dns01_txt_value(acme.key_authorization(challenge["token"]))
            )
        for authz in _authzs(acme, order):
            acme.post(_challenge(authz, "dns-01")["url"], {})
        ready = acme.poll(order["url"], until=lambda o: o["status"] != "pending")
        assert ready["status"] == "ready", ready
    finally:
        challtestsrv.clear_txt(record)
    cert = _finalize(acme, order, ["*.wild.test", "wild.test"], [])
    assert _sans(cert) == (["*.wild.test", "wild.test"], [])


def test_dns01_wrong_record_fails_with_unauthorized(acme: Acme, challtestsrv: ChallTestSrv) -> None:
    order = _order(acme, [{"type": "dns", "value": "wrong-txt.test"}])
    record = dns01_record_name("wrong-txt.test")
    challtestsrv.set_txt(record, "not-the-digest")
    try:
        authz = _authzs(acme, order)[0]
        acme.post(_challenge(authz, "dns-01")["url"], {})
        failed = acme.poll(order["url"], until=lambda o: o["status"] != "pending")
    finally:
        challtestsrv.clear_txt(record)
    assert failed["status"] == "invalid"
    assert failed["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
    assert [p["identifier"] for p in failed["error"]["subproblems"]] == [
        {"type": "dns", "value": "wrong-txt.test"}
    ]
    challenge = _challenge(acme.get(order["authorizations"][0]).json(), "dns-01")
    assert challenge["status"] == "invalid"
    assert challenge["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
    assert challenge["error"]["identifier"] == {"type": "dns", "value": "wrong-txt.test"}


@pytest.mark.parametrize(
    ("identifier", "listen"),
    [
        pytest.param({"type": "dns", "value": "alpn.test"}, "127.0.0.1", id="dns"),
        pytest.param({"type": "ip", "value": "127.0.0.2"}, "127.0.0.2", id="ipv4"),
    ],
)
def test_tls_alpn01(
    ca_server: CaServer, acme: Acme, identifier: dict[str, str], listen: str
) -> None:
    order = _order(acme, [identifier])
    authz = _authzs(acme, order)[0]
    challenge = _challenge(authz, "tls-alpn-01")
    with TlsAlpnResponder(ca_server.tlsalpn01_port, listen) as responder:
        responder.add(
            identifier["type"], identifier["value"], acme.key_authorization(challenge["token"])
        )
        acme.post(challenge["url"], {})
        ready = acme.poll(order["url"], until=lambda o: o["status"] != "pending")
    assert ready["status"] == "ready", acme.get(authz["challenges"][0]["url"]).json()
    if identifier["type"] == "ip":
        cert = _finalize(acme, order, [], [identifier["value"]])
        assert _sans(cert) == ([], ["127.0.0.2"])
    else:
        cert = _finalize(acme, order, [identifier["value"]], [])
        assert _sans(cert) == ([identifier["value"]], [])


def test_ip_identifier_over_http01(ca_server: CaServer, acme: Acme) -> None:
    from tests.acmetest import Http01Responder

    order = _order(
        acme, [{"type": "ip", "value": "127.0.0.1"}, {"type": "dns", "value": "ip-mix.test"}]
    )
    with Http01Responder(ca_server.http01_port) as responder:
        ready = acme.solve_and_wait(order, responder)
    assert ready["status"] == "ready"
    cert = _finalize(acme, order, ["ip-mix.test"], ["127.0.0.1"])
    assert _sans(cert) == (["ip-mix.test"], ["127.0.0.1"])
    assert ipaddress.ip_address("127.0.0.1") in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value.get_values_for_type(x509.IPAddress)


@pytest.mark.parametrize(
    ("identifier", "code"),
    [
        pytest.param({"type": "ip", "value": "224.0.0.1"}, "rejectedIdentifier", id="multicast"),
        pytest.param({"type": "ip", "value": "0.0.0.0"}, "rejectedIdentifier", id="unspecified"),
        pytest.param({"type": "ip", "value": "1.2.3"}, "malformed", id="not-an-ip"),
        pytest.param({"type": "ip", "value": "fe80::1%eth0"}, "malformed", id="zone-id"),
    ],
)
def test_bad_ip_identifiers(acme: Acme, identifier: dict[str, str], code: str) -> None:
    response = acme.post(acme.directory["newOrder"], {"identifiers": [identifier]})
    body = assert_problem(response, code, 400)
    assert body["identifier"] == identifier


def test_wildcard_cannot_use_http01(acme: Acme) -> None:
    order = _order(acme, [{"type": "dns", "value": "*.nohttp.test"}])
    authz = _authzs(acme, order)[0]
    assert authz["wildcard"] is True
    assert authz["identifier"] == {"type": "dns", "value": "nohttp.test"}
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
