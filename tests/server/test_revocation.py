"""Revocation over HTTPS (RFC 8555 §7.6): by owner, by authorization holder, by cert key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from joserfc import jwk

from certsmith.acme.jose import b64url_encode
from tests.acmetest import Acme, issue
from tests.server.dbsnapshot import snapshot
from tests.server.test_bad_input import assert_problem
from tests.support import CaServer


@pytest.fixture
def acme(ca_server: CaServer) -> Iterator[Acme]:
    client = Acme(ca_server.directory, ca_server.root)
    assert client.register().status_code == 201
    yield client
    client.close()


def _der_b64(chain: bytes) -> str:
    return b64url_encode(x509.load_pem_x509_certificates(chain)[0].public_bytes(Encoding.DER))


def test_revoke_by_owner_then_already_revoked(ca_server: CaServer, acme: Acme) -> None:
    chain, _ = issue(acme, ca_server.http01_port, "revoke-owner.test")
    url = acme.directory["revokeCert"]
    response = acme.post(url, {"certificate": _der_b64(chain), "reason": 4})
    assert response.status_code == 200, response.text
    assert_problem(acme.post(url, {"certificate": _der_b64(chain)}), "alreadyRevoked", 400)


def test_revoke_by_certificate_key(ca_server: CaServer, acme: Acme) -> None:
    chain, cert_key = issue(acme, ca_server.http01_port, "revoke-key.test")
    signer = jwk.ECKey.import_key(cert_key)
    response = acme.post(
        acme.directory["revokeCert"],
        {"certificate": _der_b64(chain), "reason": 1},
        key=signer,
        use_jwk=True,
    )
    assert response.status_code == 200, response.text


def test_revoke_by_account_holding_authorizations(ca_server: CaServer, acme: Acme) -> None:
    chain, _ = issue(acme, ca_server.http01_port, "revoke-other.test")
    other = Acme(ca_server.directory, ca_server.root)
    other.register()
    url = other.directory["revokeCert"]
    before = snapshot(ca_server.data_dir)
    assert_problem(other.post(url, {"certificate": _der_b64(chain)}), "unauthorized", 403)
    assert snapshot(ca_server.data_dir) == before
    # Once the other account validates the name itself, it may revoke.
    issue(other, ca_server.http01_port, "revoke-other.test")
    assert other.post(url, {"certificate": _der_b64(chain)}).status_code == 200
    other.close()


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param(2, id="cACompromise"),
        pytest.param(6, id="certificateHold"),
        pytest.param(7, id="unused-code"),
        pytest.param(9, id="privilegeWithdrawn"),
        pytest.param(-1, id="negative"),
        pytest.param("1", id="string"),
    ],
)
def test_refused_reasons(ca_server: CaServer, acme: Acme, reason: object) -> None:
    chain, _ = issue(acme, ca_server.http01_port, "revoke-reason.test")
    before = snapshot(ca_server.data_dir)
    response = acme.post(
        acme.directory["revokeCert"], {"certificate": _der_b64(chain), "reason": reason}
    )
    assert_problem(response, "badRevocationReason", 400)
    assert snapshot(ca_server.data_dir) == before


def test_revoke_with_unrelated_key_or_unknown_certificate(ca_server: CaServer, acme: Acme) -> None:
    chain, _ = issue(acme, ca_server.http01_port, "revoke-unrelated.test")
    url = acme.directory["revokeCert"]
    stranger = jwk.generate_key("EC", "P-256")
    response = acme.post(url, {"certificate": _der_b64(chain)}, key=stranger, use_jwk=True)
    assert_problem(response, "unauthorized", 403)
    root_der = x509.load_pem_x509_certificate(ca_server.root.read_bytes()).public_bytes(
        Encoding.DER
    )
    assert_problem(acme.post(url, {"certificate": b64url_encode(root_der)}), "malformed", 404)
    assert_problem(acme.post(url, {"certificate": "bm90IGEgY2VydA"}), "malformed", 400)
