"""lego (Debian package, nobody here wrote it) obtains certificates from `certsmith serve`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.interop.verify import verify_chain
from tests.support import CaServer, require_tool

pytestmark = pytest.mark.interop


def lego(ca: CaServer, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        require_tool("lego"),
        "--server",
        ca.directory,
        "--email",
        "interop@example.org",
        "--accept-tos",
        "--http",
        "--http.port",
        f"127.0.0.1:{ca.http01_port}",
        "--path",
        str(path),
        *args,
    ]
    env = {**os.environ, "LEGO_CA_CERTIFICATES": str(ca.root)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{ca.log()[-4000:]}"
    return result


def test_lego_http01_issues_and_renews_after_restart(fresh_ca: CaServer, tmp_path: Path) -> None:
    path = tmp_path / "lego"
    lego(fresh_ca, path, "-d", "lego.example.test", "run")
    crt = path / "certificates" / "lego.example.test.crt"
    first = verify_chain(crt.read_bytes(), fresh_ca.root, "lego.example.test")

    # Durability: restart, then renew with the stored account; a new certificate results.
    fresh_ca.restart()
    lego(fresh_ca, path, "-d", "lego.example.test", "renew", "--days", "365", "--no-random-sleep")
    second = verify_chain(crt.read_bytes(), fresh_ca.root, "lego.example.test")
    assert second.serial_number != first.serial_number
