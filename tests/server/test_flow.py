"""The whole issuance flow over real HTTPS and a real http-01 responder."""

from __future__ import annotations

from cryptography import x509

from certsmith.acme.keys import generate_private_key
from tests.acmetest import Acme, Http01Responder, csr_b64
from tests.support import CaServer


def test_issue_with_http01(ca_server: CaServer) -> None:
    acme = Acme(ca_server.directory, ca_server.root)
    assert acme.register(contact=["mailto:a@example.org"]).status_code == 201
    response = acme.new_order("Flow.Example.test", "www.flow.example.test")
    assert response.status_code == 201
    order = response.json()
    order["url"] = response.headers["Location"]
    assert order["identifiers"] == [
        {"type": "dns", "value": "flow.example.test"},
        {"type": "dns", "value": "www.flow.example.test"},
    ]
    with Http01Responder(ca_server.http01_port) as responder:
        order = acme.solve_and_wait(order, responder)
    assert order["status"] == "ready"
    key = generate_private_key("ec256")
    names = ["flow.example.test", "www.flow.example.test"]
    finalized = acme.post(order["finalize"], {"csr": csr_b64(key, names)})
    assert finalized.status_code == 200, finalized.text
    order = acme.poll(order["url"], until=lambda o: o["status"] == "valid")
    cert = acme.get(order["certificate"])
    assert cert.headers["Content-Type"] == "application/pem-certificate-chain"
    chain = x509.load_pem_x509_certificates(cert.content)
    assert len(chain) == 2
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == names
    acme.close()
