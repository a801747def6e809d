"""Test support: free ports, running `certsmith serve` and pebble-challtestsrv for real."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CERTSMITH = [sys.executable, "-m", "certsmith.cli"]


def trust(root: Path) -> ssl.SSLContext:
    """A TLS context that trusts only `root`."""
    return ssl.create_default_context(cafile=str(root))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: object, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed; `make test` installs it")
    return path


@dataclass
class ChallTestSrv:
    """pebble-challtestsrv answering every name with 127.0.0.1 and serving TXT records."""

    dns_port: int
    management_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def dns_server(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                require_tool("pebble-challtestsrv"),
                "-defaultIPv6",
                "",
                "-defaultIPv4",
                "127.0.0.1",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{self.management_port}",
                "-dns01",
                f"127.0.0.1:{self.dns_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: (
                httpx.post(
                    f"http://127.0.0.1:{self.management_port}/clear-txt",
                    json={"host": "probe.test."},
                ).status_code
                == 200
            ),
            what="pebble-challtestsrv",
        )

    def set_txt(self, record: str, value: str) -> None:
        """Add a TXT value at `record` (a trailing dot is added if missing)."""
        host = record if record.endswith(".") else record + "."
        url = f"http://127.0.0.1:{self.management_port}/set-txt"
        httpx.post(url, json={"host": host, "value": value}).raise_for_status()

    def clear_txt(self, record: str) -> None:
        host = record if record.endswith(".") else record + "."
        url = f"http://127.0.0.1:{self.management_port}/clear-txt"
        httpx.post(url, json={"host": host}).raise_for_status()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


@dataclass
class CaServer:
    """A real `certsmith serve` process on loopback with its own data directory."""

    data_dir: Path
    dns_server: str | None
    port: int = field(default_factory=free_port)
    http01_port: int = field(default_factory=free_port)
    tlsalpn01_port: int = field(default_factory=free_port)
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/directory"

    @property
    def root(self) -> Path:
        return self.data_dir / "root.pem"

    def start(self) -> None:
        args = [
            *CERTSMITH,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--http01-port",
            str(self.http01_port),
            "--tlsalpn01-port",
            str(self.tlsalpn01_port),
            # Tests validate loopback addresses such as 127.0.0.2 and ::1 (RFC 8738).
            "--allow-private-ips",
            *(["--dns-server", self.dns_server] if self.dns_server else []),
            *self.extra_args,
        ]
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ})
        try:
            wait_for(self._ready, what=f"certsmith serve on {self.port}")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"certsmith serve exited; see {self.log_path}")
        if not self.root.exists():
            return False
        return httpx.get(self.directory, verify=trust(self.root)).status_code == 200

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            self.process.wait(15)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""
