"""Which CA a command talks to when --server is left out, and errors raised before any
request: each is one line, never a traceback, and never a public CA by default."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.client.cli_support import Client, certsmith_ca, domains, standalone
from tests.support import CaServer, ChallTestSrv


def _client(ca_server: CaServer, challtestsrv: ChallTestSrv, config: Path) -> Client:
    ca = certsmith_ca(ca_server, challtestsrv)
    return Client(ca, config)


def test_commands_without_server_use_the_stored_ca(
    ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path
) -> None:
    client = _client(ca_server, challtestsrv, tmp_path / "config")
    config = ["--config-dir", str(client.config_dir)]
    # Nothing stored yet: the user must say which CA; nothing is sent anywhere.
    error = client.fails("account", "show", *config)
    assert "--server" in error
    client.issue(*standalone(client.ca), "--agree-tos", *domains("defaults.cli.test"))
    # The account remembers its CA bundle, the certificate its CA: no flags needed.
    base = ca_server.directory.rsplit("/", 1)[0]
    assert f"url: {base}/acme/acct/" in client.ok("account", "show", *config)
    assert "revoked" in client.ok("revoke", "--cert-name", "defaults.cli.test", *config)
    client.ok("issue", *config, *standalone(client.ca), *domains("again.cli.test"))
    # Store folders are owner-only: whoever may write there could swap keys or links.
    for folder in ("accounts", "archive", "live", "renewal"):
        mode = stat.S_IMODE(os.stat(client.config_dir / folder).st_mode)
        assert mode & 0o077 == 0, (folder, oct(mode))


def test_errors_before_any_request_are_one_line(
    ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path
) -> None:
    client = _client(ca_server, challtestsrv, tmp_path / "config")
    assert "invalid label" in client.issue_fails(*standalone(client.ca), "-d", "bad_name.test")
    config = ["--config-dir", str(client.config_dir)]
    bad_server = client.fails(
        "issue", "--server", "ftp://x", *config, "--standalone", "-d", "a.test"
    )
    assert "--server must be a directory URL" in bad_server
