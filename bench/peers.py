"""Processes for the benchmarks: free loopback ports, started servers, Pebble and its DNS.

Shared by bench/compare.py and bench/clients.py. Every server is started as a context
manager and stopped (SIGTERM, then SIGKILL) when the block ends, however it ends.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOOPBACK = "127.0.0.1"

# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on loopback (pebble-challtestsrv's DNS uses both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for DNS on loopback")


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} is not installed (Debian package pebble; `make peers`)")
    return path


@dataclass
class Server:
    """A process this script started, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextlib.contextmanager
def started(
    name: str, args: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=log.parent
        )
    server = Server(name, process, log)
    try:
        yield server
    finally:
        server.stop()


def wait_until(server: Server, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} was not ready after {timeout:.0f} s; see {server.log}")


def tcp_listening(port: int) -> bool:
    with socket.create_connection((LOOPBACK, port), timeout=1):
        return True


def directory_ok(url: str, verify: ssl.SSLContext) -> bool:
    return httpx.get(url, verify=verify, timeout=5, trust_env=False).status_code == 200


@dataclass
class Target:
    name: str
    server: Server
    directory: str
    cafile: Path


def self_signed_listener(directory: Path) -> tuple[Path, Path]:
    """A P-256 certificate for localhost and 127.0.0.1, its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble bench listener")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "pebble-cert.pem", directory / "pebble-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@contextlib.contextmanager
def pebble(
    work: Path, http01_port: int, dns: str, extra_env: dict[str, str] | None = None
) -> Iterator[Target]:
    """Pebble on loopback, validating http-01 on `http01_port` and asking `dns` for names;
    `extra_env` adds or overrides PEBBLE_* settings."""
    cert, key = self_signed_listener(work)
    port, management, tls_port = free_port(), free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"{LOOPBACK}:{port}",
            "managementListenAddress": f"{LOOPBACK}:{management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http01_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    config_path = work / "pebble-config.json"
    config_path.write_text(json.dumps(config, indent=2))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    env.update(extra_env or {})
    args = [require("pebble"), "-config", str(config_path), "-dnsserver", dns]
    directory = f"https://{LOOPBACK}:{port}/dir"
    with started("pebble", args, work / "pebble.log", env) as server:
        trust = ssl.create_default_context(cafile=cert)
        wait_until(server, lambda: directory_ok(directory, trust))
        yield Target("pebble", server, directory, cert)


@contextlib.contextmanager
def challtestsrv(work: Path) -> Iterator[tuple[Server, str]]:
    """pebble-challtestsrv as a DNS server only; yields it and its HOST:PORT."""
    dns_port, management = free_udp_and_tcp_port(), free_port()
    args = [
        require("pebble-challtestsrv"),
        "-defaultIPv4",
        LOOPBACK,
        "-defaultIPv6",
        "",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
        "-management",
        f"{LOOPBACK}:{management}",
        "-dns01",
        f"{LOOPBACK}:{dns_port}",
    ]
    with started("pebble-challtestsrv", args, work / "challtestsrv.log") as server:
        wait_until(server, lambda: tcp_listening(management) and tcp_listening(dns_port))
        yield server, f"{LOOPBACK}:{dns_port}"
