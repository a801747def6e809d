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
import math
import os
import shutil
import signal
import ssl
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loadgen import LoadGenerator, LoadResult
from peers import (
    LOOPBACK,
    Target,
    challtestsrv,
    directory_ok,
    free_port,
    pebble,
    started,
    wait_until,
)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
