"""Shared pieces for peer-client tests: an HTTP server for challenge files, hook scripts and
a temporary entry in the system trust store."""

from __future__ import annotations

import re
import secrets
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support import require_tool

CHALLENGE_PATH = "/.well-known/acme-challenge/"


@dataclass
class ChallengeServer:
    """What a running `serve_challenges` server knows: its challenge directory and the
    requests it answered, as (path, status) pairs."""

    webroot: Path
    requests: list[tuple[str, int]] = field(default_factory=list)

    @property
    def challenge_dir(self) -> Path:
        """WEBROOT/.well-known/acme-challenge, served at /.well-known/acme-challenge/."""
        return self.webroot / CHALLENGE_PATH.strip("/")

    def fetched_tokens(self) -> list[str]:
        """Tokens the CA (or anyone) fetched successfully."""
        return [
            path.removeprefix(CHALLENGE_PATH)
            for path, status in self.requests
            if path.startswith(CHALLENGE_PATH) and status == 200
        ]


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files read-only and records each request instead of printing it."""

    served: ChallengeServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.served.requests.append((self.path, int(code) if isinstance(code, int) else 0))

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_challenges(webroot: Path, port: int) -> Iterator[ChallengeServer]:
    """Serve `webroot` over plain HTTP on 127.0.0.1:`port` from a thread.

    The challenge directory (WEBROOT/.well-known/acme-challenge) is created, so a client's
    webroot or challenge-directory option can point at it before anything is written.
    """
    served = ChallengeServer(webroot)
    served.challenge_dir.mkdir(parents=True, exist_ok=True)
    handler = type("Handler", (_QuietHandler,), {"served": served})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), partial(handler, directory=str(webroot)))
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def write_python_script(path: Path, source: str, **constants: object) -> Path:
    """An executable script run by this interpreter (hooks need only the standard library),
    with each of `constants` assigned at its top as NAME = repr(value)."""
    assignments = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    path.write_text(f"#!{sys.executable}\n{assignments}{source}")
    path.chmod(0o755)
    return path


# Sets or clears a TXT record through pebble-challtestsrv's management API. Used by hooks;
# http.client rather than urllib so that no proxy setting can redirect it.
TXT_FUNCTIONS = """
import http.client
import json


def challtestsrv(port, action, name, value=None):
    body = {"host": "_acme-challenge." + name.removeprefix("*.").rstrip(".") + "."}
    if value is not None:
        body["value"] = value
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/" + action, json.dumps(body))
        status = conn.getresponse().status
    finally:
        conn.close()
    if status != 200:
        raise SystemExit(f"challtestsrv {action} for {name}: HTTP {status}")
"""


def write_csr(path: Path, key_path: Path, *names: str) -> Path:
    """A P-256 key at `key_path` and a PEM CSR for `names` (CN = first name) at `path`."""
    key = ec.generate_private_key(ec.SECP256R1())
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def write_rsa_key(path: Path) -> Path:
    """A new RSA 2048 private key in traditional (PKCS#1) PEM, as older tools expect."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PEM_BLOCK = r"-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----"


def _update_ca_certificates() -> None:
    result = subprocess.run(
        [require_tool("update-ca-certificates")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"update-ca-certificates:\n{result.stdout}\n{result.stderr}"


def _in_system_bundle(root_pem: bytes) -> bool:
    # Compared as DER, not parsed: the bundle may hold certificates cryptography warns about.
    wanted = ssl.PEM_cert_to_DER_cert(root_pem.decode())
    blocks = re.findall(_PEM_BLOCK, SYSTEM_BUNDLE.read_text())
    return any(ssl.PEM_cert_to_DER_cert(block) == wanted for block in blocks)


@contextmanager
def system_trust(root: Path) -> Iterator[None]:
    """Add `root` to the Debian system trust store for the duration, then take it out again.

    For clients that can only use the system store. Needs root (CI runs tests as root); the
    file name is random so concurrent runs and the machine's own entries are untouched.
    """
    if not LOCAL_CA_DIR.is_dir() or not SYSTEM_BUNDLE.exists():
        raise RuntimeError(f"no Debian trust store ({LOCAL_CA_DIR}, {SYSTEM_BUNDLE})")
    entry = LOCAL_CA_DIR / f"certsmith-test-{secrets.token_hex(8)}.crt"
    try:
        entry.write_bytes(root.read_bytes())
    except PermissionError as err:
        raise RuntimeError(f"adding to the system trust store needs root: {err}") from None
    try:
        _update_ca_certificates()
        assert _in_system_bundle(root.read_bytes()), f"{root} did not reach {SYSTEM_BUNDLE}"
        yield
    finally:
        entry.unlink(missing_ok=True)
        _update_ca_certificates()
    assert not _in_system_bundle(root.read_bytes()), f"{root} is still in {SYSTEM_BUNDLE}"
