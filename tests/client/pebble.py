"""Pebble (the ACME test CA nobody here wrote) with a pebble-challtestsrv of its own.

Pebble's validation authority asks that challtestsrv for every name (it answers
127.0.0.1) and connects to `http01_port` / `tlsalpn01_port` on loopback, where a test's
solver listens. Everything binds 127.0.0.1 on ports picked free at start.

`pebble_bind9` is a Pebble whose validation authority asks the bind9 fixture's `named`
instead, so a dns-01 record is seen only if an RFC 2136 update put it there.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.client.bind9 import Bind9
from tests.support import ChallTestSrv, free_port, require_tool, trust, wait_for


def write_tls_identity(cert_path: Path, key_path: Path) -> None:
    """A self-signed P-256 certificate for localhost and 127.0.0.1 (Pebble's listeners)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


@dataclass
class Pebble:
    """A running Pebble and the challtestsrv it resolves names with."""

    workdir: Path
    nonce_reject: int = 0
    port: int = field(default_factory=free_port)
    management_port: int = field(default_factory=free_port)
    http01_port: int = field(default_factory=free_port)
    tlsalpn01_port: int = field(default_factory=free_port)
    challtestsrv: ChallTestSrv = field(
        default_factory=lambda: ChallTestSrv(dns_port=free_port(), management_port=free_port())
    )
    # HOST:PORT the validation authority resolves names with; None: the challtestsrv above,
    # which is then started along with Pebble.
    resolver: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def ca_bundle(self) -> Path:
        """What to trust for Pebble's own HTTPS listeners (the self-signed certificate)."""
        return self.workdir / "tls-cert.pem"

    @property
    def root(self) -> Path:
        """The root that Pebble's issued chains lead to (fetched at start)."""
        return self.workdir / "issuing-root.pem"

    @property
    def log_path(self) -> Path:
        return self.workdir / "pebble.log"

    @property
    def dns_server(self) -> str:
        return self.resolver or self.challtestsrv.dns_server

    @property
    def challtestsrv_management_port(self) -> int:
        """Where TXT records are set (`POST /set-txt`) and cleared (`POST /clear-txt`)."""
        return self.challtestsrv.management_port

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        key_path = self.workdir / "tls-key.pem"
        write_tls_identity(self.ca_bundle, key_path)
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(self.ca_bundle),
                "privateKey": str(key_path),
                "httpPort": self.http01_port,
                "tlsPort": self.tlsalpn01_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        config_path = self.workdir / "pebble-config.json"
        config_path.write_text(json.dumps(config, indent=2))
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": str(self.nonce_reject),
        }
        args = [require_tool("pebble"), "-config", str(config_path)]
        args += ["-dnsserver", self.dns_server]
        try:
            if self.resolver is None:
                self.challtestsrv.start()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(args, stdout=log, stderr=log, env=env)
            wait_for(self._ready, what=f"pebble on {self.port}")
            self._fetch_root()
        except BaseException:
            self.stop()
            raise

    def _get(self, url: str) -> httpx.Response:
        with httpx.Client(verify=trust(self.ca_bundle), timeout=10) as client:
            return client.get(url)

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"pebble exited; see {self.log_path}")
        return self._get(self.directory).status_code == 200

    def _fetch_root(self) -> None:
        response = self._get(f"{self.management_url}/roots/0")
        response.raise_for_status()
        x509.load_pem_x509_certificate(response.content)
        self.root.write_bytes(response.content)

    def certificate_status(self, serial: int) -> str:
        """'Valid' or 'Revoked', from the management API."""
        response = self._get(f"{self.management_url}/cert-status-by-serial/{serial:x}")
        response.raise_for_status()
        return str(response.json()["Status"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None
        if self.challtestsrv.process is not None:
            self.challtestsrv.stop()
            self.challtestsrv.process = None


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """One Pebble (and its own challtestsrv) for the session; nonces are never rejected."""
    server = Pebble(tmp_path_factory.mktemp("pebble"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pebble_nonce_reject(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """A second Pebble that answers half of all good nonces with badNonce (RFC 8555 §6.5)."""
    server = Pebble(tmp_path_factory.mktemp("pebble-badnonce"), nonce_reject=50)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pebble_bind9(tmp_path_factory: pytest.TempPathFactory, bind9: Bind9) -> Iterator[Pebble]:
    """A Pebble whose validation authority resolves every name with the bind9 fixture."""
    host, port = bind9.server
    server = Pebble(tmp_path_factory.mktemp("pebble-bind9"), resolver=f"{host}:{port}")
    server.start()
    yield server
    server.stop()
