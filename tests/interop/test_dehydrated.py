"""dehydrated (Debian package, a Bash ACME client nobody here wrote) obtains certificates
from `certsmith serve` with http-01 (its WELLKNOWN directory served over HTTP) and dns-01
(a hook setting TXT records in pebble-challtestsrv, which the CA resolves through)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.interop.helpers import TXT_FUNCTIONS, serve_challenges, write_python_script
from tests.interop.verify import verify_chain
from tests.support import CaServer, ChallTestSrv, require_tool

pytestmark = pytest.mark.interop

# dehydrated calls its hook for many events and insists that unknown ones exit 0.
# deploy_challenge/clean_challenge get: NAME TOKEN_FILENAME TXT_VALUE (HOOK_CHAIN=no).
DNS_HOOK = (
    TXT_FUNCTIONS
    + """
import sys

event, args = sys.argv[1], sys.argv[2:]
if event == "deploy_challenge":
    challtestsrv(MANAGEMENT_PORT, "set-txt", args[0], args[2])
elif event == "clean_challenge":
    challtestsrv(MANAGEMENT_PORT, "clear-txt", args[0])
"""
)


def configure(
    ca: CaServer, basedir: Path, challenge: str, wellknown: Path, hook: Path | None
) -> Path:
    """A dehydrated config file (it is sourced by Bash, so values are quoted)."""
    basedir.mkdir(parents=True, exist_ok=True)
    config = basedir / "config"
    lines = {
        "CA": ca.directory,
        # CURL_OPTS is word-split unquoted by dehydrated; pytest's tmp paths hold no spaces.
        "CURL_OPTS": f"--cacert {ca.root}",
        "BASEDIR": str(basedir),
        "WELLKNOWN": str(wellknown),
        "CHALLENGETYPE": challenge,
        "HOOK": str(hook) if hook else "",
        "CONTACT_EMAIL": "interop@example.org",
    }
    config.write_text("".join(f'{key}="{value}"\n' for key, value in lines.items()))
    return config


def dehydrated(ca: CaServer, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [require_tool("dehydrated"), "--config", str(config), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{ca.log()[-4000:]}"
    return result


def issue(ca: CaServer, config: Path, *names: str) -> bytes:
    """Register, then issue one certificate for `names`; its full chain."""
    dehydrated(ca, config, "--register", "--accept-terms")
    domains = [arg for name in names for arg in ("--domain", name)]
    dehydrated(ca, config, "--cron", *domains)
    return (config.parent / "certs" / names[0] / "fullchain.pem").read_bytes()


def test_dehydrated_http01(ca_server: CaServer, tmp_path: Path) -> None:
    names = ("dehydrated.example.test", "www.dehydrated.example.test")
    with serve_challenges(tmp_path / "www", ca_server.http01_port) as web:
        config = configure(ca_server, tmp_path / "dehydrated", "http-01", web.challenge_dir, None)
        chain = issue(ca_server, config, *names)
    for name in names:
        verify_chain(chain, ca_server.root, name)
    # The CA fetched one token per name from the served WELLKNOWN directory.
    assert len(set(web.fetched_tokens())) == len(names), (
        f"{web.requests}\n{ca_server.log()[-4000:]}"
    )
    assert list(web.challenge_dir.iterdir()) == []


def test_dehydrated_dns01_with_wildcard(
    ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path
) -> None:
    # The name and its wildcard share one TXT record name: dehydrated deploys both values
    # before asking for validation, so the CA must find its own among two.
    names = ("dns.dehydrated.test", "*.dns.dehydrated.test")
    hook = write_python_script(
        tmp_path / "hook.py", DNS_HOOK, MANAGEMENT_PORT=challtestsrv.management_port
    )
    # No HTTP server is running on the http-01 port: only the TXT records can validate.
    config = configure(ca_server, tmp_path / "dehydrated", "dns-01", tmp_path / "unused", hook)
    chain = issue(ca_server, config, *names)
    verify_chain(chain, ca_server.root, "dns.dehydrated.test")
    verify_chain(chain, ca_server.root, "anything.dns.dehydrated.test")
