"""Alternate chains (RFC 8555 §7.4.2): the same leaf under a cross-signed intermediate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509

from tests.acmetest import Acme, issue
from tests.interop.test_certbot import standalone
from tests.interop.verify import verify_chain
from tests.support import CaServer


def _alternates(link_header: str) -> list[str]:
    return re.findall(r'<([^>]+)>;rel="alternate"', link_header)


def test_alternate_chain_links_and_verification(ca_server: CaServer) -> None:
    acme = Acme(ca_server.directory, ca_server.root)
    acme.register()
    issue(acme, ca_server.http01_port, "alt-chain.test")
    order_cert_url = acme.get(acme.kid + "/orders").json()["orders"]  # type: ignore[operator]
    assert order_cert_url
    default = acme.poll(order_cert_url[-1], until=lambda o: o["status"] == "valid")
    response = acme.get(default["certificate"])
    alternates = _alternates(response.headers["Link"])
    assert len(alternates) == 1
    alternate = acme.get(alternates[0])
    assert alternate.status_code == 200
    assert _alternates(alternate.headers["Link"]) == [default["certificate"]]

    main_certs = x509.load_pem_x509_certificates(response.content)
    alt_certs = x509.load_pem_x509_certificates(alternate.content)
    assert main_certs[0] == alt_certs[0]
    assert main_certs[1].public_key() == alt_certs[1].public_key()
    assert main_certs[1].issuer != alt_certs[1].issuer

    alt_root = ca_server.data_dir / "alternate-root.pem"
    verify_chain(response.content, ca_server.root, "alt-chain.test")
    verify_chain(alternate.content, alt_root, "alt-chain.test")
    with pytest.raises(x509.verification.VerificationError):
        verify_chain(alternate.content, ca_server.root, "alt-chain.test")
    assert_problem_404 = acme.get(default["certificate"] + "/7")
    assert assert_problem_404.status_code == 404
    acme.close()


@pytest.mark.interop
def test_certbot_preferred_chain(ca_server: CaServer, tmp_path: Path) -> None:
    alt_root = x509.load_pem_x509_certificate(
        (ca_server.data_dir / "alternate-root.pem").read_bytes()
    )
    alt_cn = alt_root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    workdir = tmp_path / "certbot"
    standalone(
        ca_server, workdir, "preferred.certbot.test", extra=("--preferred-chain", str(alt_cn))
    )
    fullchain = (workdir / "live" / "preferred.certbot.test" / "fullchain.pem").read_bytes()
    verify_chain(fullchain, ca_server.data_dir / "alternate-root.pem", "preferred.certbot.test")
