"""certbot (from PyPI, nobody here wrote it) obtains certificates from `certsmith serve`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.interop.verify import verify_chain
from tests.server.dbsnapshot import snapshot
from tests.support import CaServer

pytestmark = pytest.mark.interop

CERTBOT = os.environ.get("CERTBOT") or str(
    Path(__file__).resolve().parents[2] / "build" / "certbot" / "bin" / "certbot"
)


def certbot(ca: CaServer, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not Path(CERTBOT).exists():
        raise RuntimeError(f"certbot not found at {CERTBOT}; `make test` installs it")
    command = [
        CERTBOT,
        *args,
        "--server",
        ca.directory,
        "--config-dir",
        str(workdir),
        "--work-dir",
        str(workdir),
        "--logs-dir",
        str(workdir),
        "--non-interactive",
        "--no-random-sleep-on-renew",
    ]
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(ca.root)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{ca.log()[-4000:]}"
    return result


def standalone(
    ca: CaServer, workdir: Path, *names: str, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    domains = [arg for name in names for arg in ("-d", name)]
    return certbot(
        ca,
        workdir,
        "certonly",
        "--standalone",
        "--http-01-port",
        str(ca.http01_port),
        "--agree-tos",
        "-m",
        "interop@example.org",
        "--no-eff-email",
        *domains,
        *extra,
    )


def test_certbot_standalone_issues_and_survives_restart(fresh_ca: CaServer, tmp_path: Path) -> None:
    workdir = tmp_path / "certbot"
    standalone(fresh_ca, workdir, "certbot.example.test", "www.certbot.example.test")
    live = workdir / "live" / "certbot.example.test"
    leaf = verify_chain(
        (live / "fullchain.pem").read_bytes(), fresh_ca.root, "certbot.example.test"
    )
    verify_chain((live / "fullchain.pem").read_bytes(), fresh_ca.root, "www.certbot.example.test")
    accounts_before = sorted((workdir / "accounts").rglob("regr.json"))

    # Durability: after a restart the same certbot account must still be known to the CA.
    fresh_ca.restart()
    standalone(fresh_ca, workdir, "second.example.test")
    verify_chain(
        (workdir / "live" / "second.example.test" / "fullchain.pem").read_bytes(),
        fresh_ca.root,
        "second.example.test",
    )
    assert sorted((workdir / "accounts").rglob("regr.json")) == accounts_before
    assert leaf.serial_number > 0


def test_certbot_account_and_revocation(ca_server: CaServer, tmp_path: Path) -> None:
    workdir = tmp_path / "certbot"
    standalone(ca_server, workdir, "revoke.certbot.test")
    cert = workdir / "live" / "revoke.certbot.test" / "cert.pem"
    certbot(ca_server, workdir, "update_account", "-m", "changed@example.org")
    certbot(
        ca_server,
        workdir,
        "revoke",
        "--cert-path",
        str(cert),
        "--reason",
        "superseded",
        "--no-delete-after-revoke",
    )
    # Revoking twice is refused by the CA with alreadyRevoked; certbot reports failure.
    again = subprocess.run(
        [
            CERTBOT,
            "revoke",
            "--cert-path",
            str(cert),
            "--server",
            ca_server.directory,
            "--config-dir",
            str(workdir),
            "--work-dir",
            str(workdir),
            "--logs-dir",
            str(workdir),
            "--non-interactive",
            "--no-delete-after-revoke",
        ],
        env={**os.environ, "REQUESTS_CA_BUNDLE": str(ca_server.root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode != 0
    assert (
        "alreadyRevoked" in again.stderr + again.stdout
        or "already revoked" in (again.stderr + again.stdout).lower()
    )
    certbot(ca_server, workdir, "unregister")
    # The CA recorded both the contact update and the deactivation.
    accounts = snapshot(ca_server.data_dir)["accounts"]
    changed = [row for row in accounts if "changed@example.org" in str(row)]
    assert len(changed) == 1
    assert "deactivated" in changed[0]
