"""certsmith against Pebble: the same issuance load on each, one table side by side.

Starts pebble-challtestsrv (DNS only, every name -> 127.0.0.1), then for each CA in turn:
starts it on loopback, runs a short unmeasured warm-up, samples the server's CPU time from
/proc, runs the measured flows (bench/loadgen.py), samples again, and stops it. Every
process it starts is stopped before it exits.

    .venv/bin/python bench/compare.py [--count 200] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import math
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from loadgen import LoadGenerator, LoadResult

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
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


# --- CPU time from /proc -----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    """Fields 3 onwards of /proc/PID/stat (after the parenthesised command name)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(int(entry))[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_ticks(pid: int) -> int:
    """utime+stime of `pid` and of its children, live (by walking /proc) and reaped."""
    total = 0
    for each in [pid, *_descendants(pid)]:
        try:
            fields = _stat_fields(each)
        except OSError:
            continue  # exited between the listing and the read
        # stat fields 14-17 (utime, stime, cutime, cstime) are 11-14 here.
        total += sum(int(v) for v in fields[11:15])
    return total


# --- the two CAs -------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    server: Server
    directory: str
    cafile: Path


@contextlib.contextmanager
def certsmith(work: Path, http01_port: int, dns: str) -> Iterator[Target]:
    data = work / "certsmith-data"
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "certsmith.cli",
        "serve",
        "--data-dir",
        str(data),
        "--listen",
        f"{LOOPBACK}:{port}",
        "--http01-port",
        str(http01_port),
        "--dns-server",
        dns,
    ]
    directory = f"https://{LOOPBACK}:{port}/directory"
    root = data / "root.pem"
    with started("certsmith", args, work / "certsmith.log") as server:

        def ready() -> bool:
            return root.exists() and directory_ok(
                directory, ssl.create_default_context(cafile=root)
            )

        wait_until(server, ready)
        yield Target("certsmith", server, directory, root)


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
def pebble(work: Path, http01_port: int, dns: str) -> Iterator[Target]:
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


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Measured:
    name: str
    result: LoadResult
    server_cpu_ms: float

    @property
    def cpu_ms_per_cert(self) -> float:
        return self.server_cpu_ms / self.result.issued if self.result.issued else math.nan


async def measure(target: Target, args: argparse.Namespace, http01_port: int) -> Measured:
    async with LoadGenerator(
        target.directory,
        verify=ssl.create_default_context(cafile=target.cafile),
        http01_port=http01_port,
        account_pool=args.accounts,
        poll_interval=args.poll_interval,
    ) as gen:
        if args.warmup:
            warm = await gen.run(args.warmup, args.concurrency)
            if warm.issued == 0:
                raise RuntimeError(f"{target.name}: warm-up issued nothing\n{warm.summary()}")
        before = cpu_ticks(target.server.pid)
        result = await gen.run(args.count, args.concurrency)
        after = cpu_ticks(target.server.pid)
    target.server.check_alive()
    return Measured(target.name, result, (after - before) * 1000 / CLOCK_TICKS)


def table(rows: list[Measured]) -> str:
    """Metrics down, CAs across."""

    def fmt(value: float, spec: str) -> str:
        return "n/a" if math.isnan(value) else format(value, spec)

    def per_cert(m: Measured, value: float) -> float:
        return value / m.result.issued if m.result.issued else math.nan

    lines: list[tuple[str, list[str]]] = [
        ("certificates issued", [str(m.result.issued) for m in rows]),
        ("failed flows", [str(m.result.failed) for m in rows]),
        ("orders/s", [fmt(m.result.orders_per_second, ".1f") for m in rows]),
        ("p50 flow latency (ms)", [fmt(m.result.latency_percentile(50), ".0f") for m in rows]),
        ("p95 flow latency (ms)", [fmt(m.result.latency_percentile(95), ".0f") for m in rows]),
        ("server CPU ms / cert", [fmt(m.cpu_ms_per_cert, ".2f") for m in rows]),
        ("requests / cert", [fmt(per_cert(m, m.result.requests), ".1f") for m in rows]),
        ("badNonce retries", [str(m.result.bad_nonce_retries) for m in rows]),
        (
            "loadgen CPU ms / cert",
            [fmt(per_cert(m, m.result.client_cpu_seconds * 1000), ".2f") for m in rows],
        ),
    ]
    label_width = max(len(label) for label, _ in lines)
    widths = [
        max(len(m.name), *(len(values[i]) for _, values in lines)) for i, m in enumerate(rows)
    ]
    header = " " * label_width + "  "
    header += "  ".join(m.name.rjust(w) for m, w in zip(rows, widths, strict=True))
    out = [header, "-" * len(header)]
    for label, values in lines:
        cells = "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))
        out.append(f"{label.ljust(label_width)}  {cells}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="measured certificates per CA")
    parser.add_argument("--concurrency", type=int, default=4, help="flows in flight at once")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured flows before")
    parser.add_argument("--accounts", type=int, default=0, help="account pool; 0: one per flow")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds")
    parser.add_argument(
        "--only", choices=["certsmith", "pebble"], action="append", help="run just this CA"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")
    chosen = args.only or ["certsmith", "pebble"]
    # A SIGTERM unwinds like Ctrl-C, so every server started here is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    starters = {"certsmith": certsmith, "pebble": pebble}

    work = Path(tempfile.mkdtemp(prefix="certsmith-bench-"))
    rows: list[Measured] = []
    try:
        http01_port = free_port()
        print(
            f"{args.count} certificates per CA at concurrency {args.concurrency} "
            f"after {args.warmup} warm-up flows; http-01 responder on {LOOPBACK}:{http01_port}",
            flush=True,
        )
        with challtestsrv(work) as (dns_server, dns):
            for name in chosen:
                with starters[name](work, http01_port, dns) as target:
                    print(f"{name}: {target.directory}", flush=True)
                    measured = asyncio.run(measure(target, args, http01_port))
                dns_server.check_alive()
                rows.append(measured)
                print(f"{name}: {measured.result.summary()}\n", flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(table(rows))
    return 0 if all(m.result.issued for m in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
