"""uacme (Debian package, a C ACME client nobody here wrote) obtains certificates from
`certsmith serve`, answering challenges through its hook program.

uacme speaks HTTPS through libcurl-gnutls, which trusts only the system store, so the CA's
root is added to it for this module and taken out afterwards (tests run as root in CI).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.helpers import (
    TXT_FUNCTIONS,
    serve_challenges,
    system_trust,
    write_python_script,
)
from tests.interop.verify import verify_chain
from tests.support import CaServer, ChallTestSrv, require_tool

pytestmark = pytest.mark.interop

# uacme runs HOOK METHOD TYPE IDENT TOKEN AUTH; METHOD is begin, done or failed. A non-zero
# exit from "begin" declines that challenge, and uacme tries the authorization's next one,
# so this hook accepts only WANTED. For dns-01, AUTH is already the TXT value.
HOOK = (
    TXT_FUNCTIONS
    + """
import pathlib
import sys

method, kind, ident, token, auth = sys.argv[1:6]
if kind != WANTED:
    sys.exit(1)
if kind == "http-01":
    path = pathlib.Path(CHALLENGE_DIR) / token
    if method == "begin":
        path.write_text(auth)
    else:
        path.unlink(missing_ok=True)
elif kind == "dns-01":
    if method == "begin":
        challtestsrv(MANAGEMENT_PORT, "set-txt", ident, auth)
    else:
        challtestsrv(MANAGEMENT_PORT, "clear-txt", ident)
"""
)


@pytest.fixture(scope="module")
def trusted_ca(ca_server: CaServer) -> Iterator[CaServer]:
    with system_trust(ca_server.root):
        yield ca_server


def uacme(ca: CaServer, confdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [require_tool("uacme"), "--verbose", "--acme-url", ca.directory]
    command += ["--confdir", str(confdir), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{ca.log()[-4000:]}"
    return result


def issue(ca: CaServer, confdir: Path, hook: Path, *names: str) -> bytes:
    """A new account (ToS accepted), then a certificate for `names`; its full chain."""
    uacme(ca, confdir, "--yes", "new", "interop@example.org")
    uacme(ca, confdir, "--hook", str(hook), "--type", "EC", "issue", *names)
    return (confdir / names[0] / "cert.pem").read_bytes()


def test_uacme_http01(trusted_ca: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path) -> None:
    names = ("uacme.example.test", "www.uacme.example.test")
    with serve_challenges(tmp_path / "www", trusted_ca.http01_port) as web:
        hook = write_python_script(
            tmp_path / "hook.py",
            HOOK,
            WANTED="http-01",
            CHALLENGE_DIR=str(web.challenge_dir),
            MANAGEMENT_PORT=challtestsrv.management_port,
        )
        chain = issue(trusted_ca, tmp_path / "uacme", hook, *names)
    for name in names:
        verify_chain(chain, trusted_ca.root, name)
    assert len(set(web.fetched_tokens())) == len(names), (
        f"{web.requests}\n{trusted_ca.log()[-4000:]}"
    )
    # The hook's "done" call removed each token file again.
    assert list(web.challenge_dir.iterdir()) == []


def test_uacme_dns01(trusted_ca: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path) -> None:
    # No HTTP server is running on the http-01 port: only the TXT record can validate.
    hook = write_python_script(
        tmp_path / "hook.py",
        HOOK,
        WANTED="dns-01",
        CHALLENGE_DIR=str(tmp_path / "unused"),
        MANAGEMENT_PORT=challtestsrv.management_port,
    )
    chain = issue(trusted_ca, tmp_path / "uacme", hook, "dns.uacme.test")
    verify_chain(chain, trusted_ca.root, "dns.uacme.test")
