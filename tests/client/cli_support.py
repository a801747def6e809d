"""Running `certsmith` client commands for real, and checking what they leave behind."""

from __future__ import annotations

import ipaddress
import json
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.verification import PolicyBuilder, Store

from tests.interop.verify import verify_chain
from tests.support import CaServer, ChallTestSrv

CERTSMITH = [sys.executable, "-m", "certsmith.cli"]
TIMEOUT = 60


@dataclass(frozen=True)
class Ca:
    """What a client test needs to know about the CA it talks to."""

    directory: str
    ca_bundle: Path  # trust for the CA's HTTPS listener
    root: Path  # the root that issued chains lead to
    http01_port: int
    tlsalpn01_port: int
    dns_server: str  # the DNS server the CA asks, with TXT records set by its management API
    challtestsrv_port: int
    # A certificate's status by serial, where the CA has a way to ask ("Revoked", ...).
    revocation_status: Callable[[int], str] | None = None


@dataclass
class Client:
    """The CLI with one config directory, pointed at one CA."""

    ca: Ca
    config_dir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CERTSMITH, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    @property
    def connection(self) -> list[str]:
        return [
            "--server",
            self.ca.directory,
            "--ca-bundle",
            str(self.ca.ca_bundle),
            "--config-dir",
            str(self.config_dir),
        ]

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its stdout."""
        result = self.run(*args)
        output = f"{result.stdout}\n{result.stderr}"
        assert result.returncode == 0, f"certsmith {' '.join(args)} failed:\n{output}"
        assert "Traceback" not in output, output
        return result.stdout

    def fails(self, *args: str) -> str:
        """Run a command that must fail with one 'Error: ...' line and nothing else."""
        result = self.run(*args)
        assert result.returncode != 0, f"certsmith {' '.join(args)} succeeded:\n{result.stdout}"
        return one_error_line(result)

    def issue(self, *args: str) -> str:
        return self.ok("issue", *self.connection, *args)

    def issue_fails(self, *args: str) -> str:
        return self.fails("issue", *self.connection, *args)

    def account(self, action: str, *args: str) -> str:
        return self.ok("account", action, *self.connection, *args)

    def certificates(self) -> str:
        return self.ok("certificates", "--config-dir", str(self.config_dir))

    def account_dir(self) -> Path:
        folders = list((self.config_dir / "accounts").iterdir())
        assert len(folders) == 1, folders
        return folders[0]

    def account_kid(self) -> str:
        return str(json.loads((self.account_dir() / "account.json").read_text())["kid"])


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command: 'Error: ...', no traceback."""
    everything = f"{result.stdout}\n{result.stderr}"
    assert "Traceback" not in everything, everything
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr:\n{result.stderr}"
    assert lines[0].startswith("Error: "), lines[0]
    return lines[0]


def domains(*names: str) -> list[str]:
    return [arg for name in names for arg in ("-d", name)]


def standalone(ca: Ca, address: str = "127.0.0.1") -> list[str]:
    port = str(ca.http01_port)
    return ["--standalone", "--http-01-port", port, "--http-01-address", address]


def tls_alpn(ca: Ca, address: str = "127.0.0.1") -> list[str]:
    # The built-in tls-alpn-01 responder binds the address given for http-01.
    port = str(ca.tlsalpn01_port)
    return ["--tls-alpn", "--tls-alpn-01-port", port, "--tls-alpn-01-address", address]


# A dns-01 hook: `HOOK present|cleanup RECORD VALUE` sets or clears the TXT record through
# pebble-challtestsrv's management API, and appends each call to a log for the test to read.
HOOK = """
import http.client
import json
import sys

action, record, value = sys.argv[1:4]
with open(LOG, "a") as log:
    log.write(json.dumps([action, record, value]) + "\\n")
body = {"host": record}
if action == "present":
    body["value"] = value
path = {"present": "/set-txt", "cleanup": "/clear-txt"}[action]
conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
try:
    conn.request("POST", path, json.dumps(body))
    status = conn.getresponse().status
finally:
    conn.close()
if status != 200:
    sys.exit(f"challtestsrv {path}: HTTP {status}")
"""


@dataclass(frozen=True)
class DnsHook:
    script: Path
    log: Path

    def calls(self) -> list[tuple[str, str, str]]:
        if not self.log.exists():
            return []
        return [tuple(json.loads(line)) for line in self.log.read_text().splitlines()]


def write_dns_hook(folder: Path, challtestsrv_port: int) -> DnsHook:
    folder.mkdir(parents=True, exist_ok=True)
    script, log = folder / "dns-hook.py", folder / "dns-hook.log"
    script.write_text(f"#!{sys.executable}\nLOG = {str(log)!r}\nPORT = {challtestsrv_port}\n{HOOK}")
    script.chmod(0o755)
    return DnsHook(script, log)


def dns_hook(ca: Ca, hook: DnsHook) -> list[str]:
    return ["--dns-hook", str(hook.script), "--dns-resolver", ca.dns_server, "--dns-timeout", "20"]


def check_stored(config_dir: Path, name: str) -> bytes:
    """live/NAME is a symlink into archive/NAME/, the key is 0600 and matches the leaf;
    returns fullchain.pem."""
    live = config_dir / "live" / name
    assert live.is_symlink(), f"{live} is not a symlink"
    target = live.resolve()
    assert target.parent == (config_dir / "archive" / name).resolve(), target
    assert target.name.isdigit(), target
    key_path = live / "privkey.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600, oct(key_path.stat().st_mode)
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    fullchain = (live / "fullchain.pem").read_bytes()
    leaf = x509.load_pem_x509_certificates(fullchain)[0]
    assert leaf == x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert leaf.public_key() == key.public_key()
    chain = (live / "chain.pem").read_bytes()
    assert chain and fullchain.endswith(chain)
    return fullchain


def verify(fullchain: bytes, root: Path, name: str) -> x509.Certificate:
    """The leaf after its chain verified up to `root` for `name`, a DNS name or an IP."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return verify_chain(fullchain, root, name)
    leaf, *intermediates = x509.load_pem_x509_certificates(fullchain)
    anchor = x509.load_pem_x509_certificate(root.read_bytes())
    verifier = PolicyBuilder().store(Store([anchor])).build_server_verifier(x509.IPAddress(address))
    verifier.verify(leaf, intermediates)
    return leaf


def common_name(path: Path) -> str:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


def certsmith_ca(ca_server: CaServer, challtestsrv: ChallTestSrv) -> Ca:
    """The session's `certsmith serve` and its DNS, as the CLI tests see a CA."""
    return Ca(
        directory=ca_server.directory,
        ca_bundle=ca_server.root,
        root=ca_server.root,
        http01_port=ca_server.http01_port,
        tlsalpn01_port=ca_server.tlsalpn01_port,
        dns_server=challtestsrv.dns_server,
        challtestsrv_port=challtestsrv.management_port,
    )
