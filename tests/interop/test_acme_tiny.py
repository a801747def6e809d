"""acme-tiny (Debian package, a small Python ACME client nobody here wrote) obtains a
certificate from `certsmith serve` with http-01, writing into a directory we serve.

acme-tiny uses urllib with Python's default TLS context, which honours SSL_CERT_FILE, so
the CA root is given that way. Before answering a challenge acme-tiny fetches the file
itself from http://NAME/.well-known/acme-challenge/TOKEN through the system resolver;
test names resolve only through pebble-challtestsrv (the CA's resolver), and that lookup
would leave the machine, so the self-check is turned off with --disable-check.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.interop.helpers import serve_challenges, write_csr, write_rsa_key
from tests.interop.verify import verify_chain
from tests.support import CaServer, require_tool

pytestmark = pytest.mark.interop


def test_acme_tiny_http01(ca_server: CaServer, tmp_path: Path) -> None:
    names = ("tiny.example.test", "www.tiny.example.test")
    # acme-tiny signs with RS256 only, so its account key must be RSA.
    account_key = write_rsa_key(tmp_path / "account.key")
    csr = write_csr(tmp_path / "domain.csr", tmp_path / "domain.key", *names)
    with serve_challenges(tmp_path / "www", ca_server.http01_port) as web:
        command = [
            require_tool("acme-tiny"),
            "--account-key",
            str(account_key),
            "--csr",
            str(csr),
            "--acme-dir",
            str(web.challenge_dir),
            "--directory-url",
            ca_server.directory,
            "--contact",
            "mailto:interop@example.org",
            "--disable-check",
        ]
        env = {**os.environ, "SSL_CERT_FILE": str(ca_server.root)}
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    log = f"{result.stdout}\n{result.stderr}\n{ca_server.log()[-4000:]}"
    assert result.returncode == 0, log
    # The signed chain (leaf, then intermediate) is acme-tiny's standard output.
    for name in names:
        verify_chain(result.stdout.encode(), ca_server.root, name)
    assert len(set(web.fetched_tokens())) == len(names), f"{web.requests}\n{log}"
    assert list(web.challenge_dir.iterdir()) == []
