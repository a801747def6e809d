"""Caddy (Debian package; its built-in CertMagic ACME client) gets a certificate on its own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.interop.peers import PeerProcess, serving, validated_challenges, wait_or_fail
from tests.interop.verify import verify_chain
from tests.support import CaServer, require_tool

pytestmark = pytest.mark.interop

NAME = "caddy.interop.test"
BODY = "served by caddy for certsmith"


def caddyfile(ca: CaServer, storage: Path) -> str:
    # The CA validates http-01 and tls-alpn-01 on its own ports, so Caddy's HTTP and HTTPS
    # listeners go there; everything binds to loopback only.
    return f"""{{
	acme_ca {ca.directory}
	acme_ca_root {ca.root}
	email interop@example.org
	http_port {ca.http01_port}
	https_port {ca.tlsalpn01_port}
	default_bind 127.0.0.1
	storage file_system {storage}
	admin off
}}

{NAME} {{
	respond "{BODY}"
}}
"""


@pytest.fixture
def caddy(fresh_ca: CaServer, tmp_path: Path) -> Iterator[tuple[PeerProcess, Path]]:
    storage = tmp_path / "caddy-storage"
    config = tmp_path / "Caddyfile"
    config.write_text(caddyfile(fresh_ca, storage))
    home = tmp_path / "caddy-home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
    }
    peer = PeerProcess(
        [require_tool("caddy"), "run", "--config", str(config), "--adapter", "caddyfile"],
        output=tmp_path / "caddy.log",
        env=env,
    )
    peer.start()
    try:
        yield peer, storage
    finally:
        peer.stop()


def test_caddy_obtains_and_serves_certificate(
    fresh_ca: CaServer, caddy: tuple[PeerProcess, Path]
) -> None:
    peer, storage = caddy

    def logs() -> str:
        return f"{peer.log()}\n--- CA ---\n{fresh_ca.log()[-4000:]}"

    def issued() -> bool:
        assert peer.running(), f"caddy exited early\n{logs()}"
        return any(storage.rglob(f"{NAME}.crt"))

    wait_or_fail(issued, 30, "caddy's certificate", logs)
    # Caddy serves what it stored (once served, the file is complete too): same certificate,
    # chain trusted for the name.
    response, der = serving(fresh_ca.tlsalpn01_port, NAME, fresh_ca.root, 10, logs)
    (crt,) = storage.rglob(f"{NAME}.crt")
    leaf = verify_chain(crt.read_bytes(), fresh_ca.root, NAME)
    assert response.startswith("HTTP/1.1 200"), f"{response}\n{logs()}"
    assert BODY in response, f"{response}\n{logs()}"
    assert x509.load_der_x509_certificate(der) == leaf, logs()

    challenges = validated_challenges(fresh_ca, NAME)
    print(f"caddy: the CA validated {NAME} with {', '.join(challenges) or 'nothing'}")
    assert challenges, f"no challenge.valid line for {NAME}\n{logs()}"
    assert set(challenges) <= {"http-01", "tls-alpn-01"}, logs()
