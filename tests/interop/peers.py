"""Peer servers nobody here wrote (Caddy, Apache httpd), run as child processes of a test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import CaServer, trust, wait_for


@dataclass
class PeerProcess:
    """One long-running peer; its output and any extra log files are kept for assertions."""

    args: list[str]
    output: Path
    env: dict[str, str]
    extra_logs: list[Path] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.output.open("ab") as out:
            # A session of its own, so that stop() can reach children the peer leaves behind.
            self.process = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send_signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        # httpd reaps its children before it exits; this only catches ones that outlived it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def log(self, tail: int = 4000) -> str:
        parts = []
        for path in [self.output, *self.extra_logs]:
            text = path.read_text(errors="replace") if path.exists() else "(missing)"
            parts.append(f"--- {path.name} ---\n{text[-tail:]}")
        return "\n".join(parts)


def https_get(port: int, server_name: str, root: Path) -> tuple[str, bytes]:
    """GET / from 127.0.0.1:`port` with SNI `server_name`, trusting only `root`.

    Returns the raw HTTP response and the DER certificate the server presented.
    """
    request = f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        trust(root).wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(request.encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace"), der


def wait_or_fail(
    check: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]
) -> None:
    """`wait_for`, failing the test with the logs attached when time runs out."""
    try:
        wait_for(check, timeout=timeout, what=what)
    except TimeoutError as err:
        raise AssertionError(f"{err}\n{logs()}") from None


def serving(
    port: int, server_name: str, root: Path, timeout: float, logs: Callable[[], str]
) -> tuple[str, bytes]:
    """The first `https_get` that succeeds within `timeout` (a handshake may fail until then)."""
    answers: list[tuple[str, bytes]] = []

    def answered() -> bool:
        answers.append(https_get(port, server_name, root))
        return True

    wait_or_fail(answered, timeout, f"an HTTPS answer for {server_name} on {port}", logs)
    return answers[-1]


def validated_challenges(ca: CaServer, name: str) -> list[str]:
    """Types of the challenges the CA's log reports valid for `name`, looked up by id.

    The `challenge.valid` log line names the challenge and the identifier but not the type,
    so the type comes from the CA's database (read-only).
    """
    ids = []
    for line in ca.log().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "challenge.valid" and event.get("identifier") == name:
            ids.append(event["challenge"])
    if not ids:
        return []
    uri = f"file:{ca.data_dir / 'certsmith.db'}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        marks = ",".join("?" * len(ids))
        query = f"SELECT type FROM challenges WHERE id IN ({marks})"  # noqa: S608 -- only "?"
        return sorted(row[0] for row in db.execute(query, ids))
    finally:
        db.close()
