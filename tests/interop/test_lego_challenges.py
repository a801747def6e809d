"""lego 4.9 (Debian) against `certsmith serve` with tls-alpn-01, dns-01, wildcards and IPs.

lego 4.9's CLI has no command for account key rollover (its commands are run, renew, revoke,
list and dnshelp), so keyChange is not exercised here; tests/server/test_accounts.py covers it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tests.interop.verify import verify_chain
from tests.support import CaServer, ChallTestSrv, require_tool

pytestmark = pytest.mark.interop

# lego's exec DNS provider calls `EXEC_PATH present|cleanup FQDN VALUE` (its default mode).
# The script adds or clears the TXT record through pebble-challtestsrv's management API.
EXEC_SCRIPT = """\
#!{python}
import json
import sys
import urllib.request

action, fqdn, value = sys.argv[1:4]
paths = {{"present": "/set-txt", "cleanup": "/clear-txt"}}
body = {{"host": fqdn, "value": value}} if action == "present" else {{"host": fqdn}}
request = urllib.request.Request(
    "http://127.0.0.1:{port}" + paths[action],
    data=json.dumps(body).encode(),
    headers={{"Content-Type": "application/json"}},
    method="POST",
)
with urllib.request.urlopen(request, timeout=5) as response:
    response.read()
"""


def lego(
    ca: CaServer, path: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run lego with `args` (challenge flags, domains, command); the CA log on failure."""
    result = run_lego(ca, path, args, env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{ca.log()[-4000:]}"
    return result


def run_lego(
    ca: CaServer, path: Path, args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    command = [
        require_tool("lego"),
        "--server",
        ca.directory,
        "--email",
        "interop@example.org",
        "--accept-tos",
        "--path",
        str(path),
        *args,
    ]
    full_env = {**os.environ, "LEGO_CA_CERTIFICATES": str(ca.root), **(env or {})}
    return subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=60)


def tls_alpn(ca: CaServer, listen: str = "127.0.0.1") -> list[str]:
    return ["--tls", "--tls.port", f"{listen}:{ca.tlsalpn01_port}"]


def dns_exec(tmp_path: Path, challtestsrv: ChallTestSrv) -> tuple[list[str], dict[str, str]]:
    """lego flags and environment for dns-01 through the exec provider and challtestsrv."""
    script = tmp_path / "lego-dns-exec"
    script.write_text(EXEC_SCRIPT.format(python=sys.executable, port=challtestsrv.management_port))
    script.chmod(0o755)
    flags = [
        "--dns",
        "exec",
        "--dns.resolvers",
        challtestsrv.dns_server,
        # lego first looks for the zone's SOA and asks its authoritative servers on port 53;
        # challtestsrv answers SOA with NOTIMP, so only the resolver above is checked.
        "--dns.disable-cp",
    ]
    env = {
        "EXEC_PATH": str(script),
        "EXEC_PROPAGATION_TIMEOUT": "10",
        "EXEC_POLLING_INTERVAL": "1",
        # The exec provider solves one challenge at a time, by default 60 s apart.
        "EXEC_SEQUENCE_INTERVAL": "1",
    }
    return flags, env


def certificate(path: Path, name: str) -> bytes:
    """lego's bundle (leaf + issuer) for the first domain; `*` is stored as `_`."""
    return (path / "certificates" / f"{name.replace('*', '_')}.crt").read_bytes()


def dns_names(leaf: x509.Certificate) -> list[str]:
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))


def verify_ip_chain(chain_pem: bytes, root_path: Path, address: str) -> x509.Certificate:
    """verify_chain for an IP address SAN (RFC 8738) instead of a DNS name."""
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem)
    root = x509.load_pem_x509_certificate(root_path.read_bytes())
    subject = x509.IPAddress(ipaddress.ip_address(address))
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(subject)
    verifier.verify(leaf, intermediates)
    return leaf


def test_lego_tls_alpn01(ca_server: CaServer, tmp_path: Path) -> None:
    path = tmp_path / "lego"
    names = ["alpn.lego.test", "www.alpn.lego.test"]
    result = lego(ca_server, path, [*tls_alpn(ca_server), "-d", names[0], "-d", names[1], "run"])
    assert result.stderr.count("use tls-alpn-01 solver") == 2, result.stderr
    chain = certificate(path, names[0])
    leaf = verify_chain(chain, ca_server.root, names[0])
    verify_chain(chain, ca_server.root, names[1])
    assert dns_names(leaf) == sorted(names)


def test_lego_dns01_exec(ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path) -> None:
    path = tmp_path / "lego"
    flags, env = dns_exec(tmp_path, challtestsrv)
    result = lego(ca_server, path, [*flags, "-d", "dns.lego.test", "run"], env)
    assert "use dns-01 solver" in result.stderr
    leaf = verify_chain(certificate(path, "dns.lego.test"), ca_server.root, "dns.lego.test")
    assert dns_names(leaf) == ["dns.lego.test"]


def test_lego_wildcard_dns01(
    ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path
) -> None:
    path = tmp_path / "lego"
    flags, env = dns_exec(tmp_path, challtestsrv)
    domains = ["-d", "*.wild.lego.test", "-d", "wild.lego.test"]
    result = lego(ca_server, path, [*flags, *domains, "run"], env)
    assert result.stderr.count("use dns-01 solver") == 2, result.stderr
    chain = certificate(path, "*.wild.lego.test")
    # The wildcard covers one label below wild.lego.test, and the base name is its own SAN.
    leaf = verify_chain(chain, ca_server.root, "wild.lego.test")
    for name in ("any.wild.lego.test", "www.wild.lego.test"):
        verify_chain(chain, ca_server.root, name)
    assert dns_names(leaf) == ["*.wild.lego.test", "wild.lego.test"]
    with pytest.raises(VerificationError):
        verify_chain(chain, ca_server.root, "deep.any.wild.lego.test")


def test_lego_ip_identifier_tls_alpn01(ca_server: CaServer, tmp_path: Path) -> None:
    path = tmp_path / "lego"
    # For an IP identifier the CA dials the address itself (RFC 8738 §6), so lego listens there.
    args = [*tls_alpn(ca_server, listen="127.0.0.2"), "-d", "127.0.0.2", "run"]
    result = run_lego(ca_server, path, args)
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0 and "rejectedIdentifier" in output and "new-order" in output:
        # lego 4.9 puts every -d value into the order as {"type": "dns"}; it has no RFC 8738
        # support, so the CA refuses 127.0.0.2 as a DNS name before any challenge.
        error = next(line.strip() for line in output.splitlines() if "rejectedIdentifier" in line)
        pytest.skip(f"lego cannot order IP identifiers: {error}")
    assert result.returncode == 0, f"{output}\n{ca_server.log()[-4000:]}"
    leaf = verify_ip_chain(certificate(path, "127.0.0.2"), ca_server.root, "127.0.0.2")
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.2")]


def test_lego_deactivates_authorizations(ca_server: CaServer, tmp_path: Path) -> None:
    path = tmp_path / "lego"
    args = [*tls_alpn(ca_server), "-d", "deactivate.lego.test", "run"]
    result = lego(ca_server, path, [*args, "--always-deactivate-authorizations", "true"])
    verify_chain(certificate(path, "deactivate.lego.test"), ca_server.root, "deactivate.lego.test")
    # lego still exits 0 when deactivation fails; it only logs the failure.
    urls = re.findall(r"Deactivating auth: (\S+)", result.stderr)
    assert len(urls) == 1, result.stderr
    assert "Unable to deactivate" not in result.stderr, (
        f"{result.stderr}\n{ca_server.log()[-4000:]}"
    )
    authz_id = urls[0].rsplit("/", 1)[1]
    events = [json.loads(line) for line in ca_server.log().splitlines() if line.startswith("{")]
    assert {"event": "authz.deactivated", "authz": authz_id} in [
        {"event": e.get("event"), "authz": e.get("authz")} for e in events
    ], ca_server.log()[-4000:]
