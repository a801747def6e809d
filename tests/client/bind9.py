"""A real BIND 9 `named` on loopback: primary for two zones that take TSIG-signed updates.

named runs in the foreground (`-g`) as whoever runs pytest. Started as root without `-u`,
it keeps uid 0 but drops every capability except binding low ports, so it can still use
the pytest temp directory, which root owns.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support import free_port, wait_for

KEY_NAME = "certsmith-test"
ZONE = "example.test"
# A zone of its own below ZONE, so zone detection has to stop at the nearest apex.
CHILD_ZONE = "deep.example.test"

_ZONE_TEMPLATE = """$TTL 60
@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60
@ IN NS ns1.{zone}.
ns1 IN A 127.0.0.1
www IN A 127.0.0.1
"""


def _named() -> str:
    # /usr/sbin is not on every user's PATH.
    path = shutil.which("named") or shutil.which("named", path="/usr/sbin")
    if path is None:
        raise RuntimeError("named is not installed (Debian package bind9); `make test` installs it")
    return path


@dataclass
class Bind9:
    """One `named -g` process with its configuration, zones and journals in `directory`."""

    directory: Path
    port: int = field(default_factory=free_port)
    secret: str = field(default_factory=lambda: base64.b64encode(os.urandom(32)).decode())
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def log_path(self) -> Path:
        return self.directory / "named.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _write_config(self) -> Path:
        d = self.directory
        zones = ""
        for zone in (ZONE, CHILD_ZONE):
            (d / f"{zone}.zone").write_text(_ZONE_TEMPLATE.format(zone=zone))
            zones += (
                f'zone "{zone}" {{ type primary; file "{d}/{zone}.zone"; '
                f'allow-update {{ key "{KEY_NAME}"; }}; journal "{d}/{zone}.jnl"; }};\n'
            )
        # The child is delegated from its parent, as it would be on the Internet.
        with (d / f"{ZONE}.zone").open("a") as parent:
            parent.write(f"deep IN NS ns1.{ZONE}.\n")
        conf = d / "named.conf"
        conf.write_text(
            f'options {{ directory "{d}"; listen-on port {self.port} {{ 127.0.0.1; }};\n'
            f'  listen-on-v6 {{ none; }}; pid-file "{d}/named.pid";\n'
            # Kept here rather than under /run/named, which may not be writable.
            f'  session-keyfile "{d}/session.key";\n'
            "  recursion no; dnssec-validation no; };\n"
            f'key "{KEY_NAME}" {{ algorithm hmac-sha256; secret "{self.secret}"; }};\n'
            # No rndc channel: it would take port 953 and read /etc/bind/rndc.key.
            "controls { };\n" + zones
        )
        return conf

    def start(self) -> None:
        conf = self._write_config()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [_named(), "-g", "-c", str(conf), "-p", str(self.port)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_for(self._answers_soa, what=f"named on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _answers_soa(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"named exited with {self.process.returncode}:\n{self.log()}")
        query = dns.message.make_query(f"{ZONE}.", dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5)
        except dns.exception.Timeout:
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@pytest.fixture(scope="session")
def bind9(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bind9]:
    """named for the whole session; tests use record names of their own."""
    server = Bind9(tmp_path_factory.mktemp("bind9"))
    server.start()
    yield server
    server.stop()
