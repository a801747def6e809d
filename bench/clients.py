"""certbot, lego and certsmith's client side by side against one Pebble; then certsmith
renewing a fleet of certificates (100 by default) in one `renew --force`.

Starts pebble-challtestsrv (DNS only, every name -> 127.0.0.1) and Pebble on free loopback
ports, runs every client as a subprocess against that one Pebble, and stops both servers
before it exits. Wall time is measured around each subprocess; CPU time is the
user+system time of the subprocess and everything it waited for (RUSAGE_CHILDREN deltas).

    .venv/bin/python bench/clients.py [--repeat 5] [--fleet 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from peers import LOOPBACK, Target, challtestsrv, free_port, pebble

ROOT = Path(__file__).resolve().parent.parent
# Pebble reuses a valid authorization for half of an account's new orders by default; the
# renewals would then skip validation at random. Every order here is validated.
PEBBLE_ENV = {"PEBBLE_AUTHZREUSE": "0"}
EMAIL = "bench@example.org"


# --- running one client ------------------------------------------------------------------


@dataclass
class Run:
    """One client invocation: what it was asked for and what it cost."""

    label: str
    name: str
    wall: float
    cpu: float
    ok: bool
    detail: str = ""


@dataclass
class Finished:
    returncode: int
    output: str
    wall: float
    cpu: float


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(
    args: Sequence[str], env: dict[str, str], log: Path, timeout: float = 600.0
) -> Finished:
    """Run `args` to completion; output goes to `log`. The child gets its own process
    group, so a timeout or an interrupt ends whatever it started too."""
    cpu_before = children_cpu()
    start = time.perf_counter()
    with log.open("w+b") as out:
        process = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
        wall = time.perf_counter() - start
        cpu = children_cpu() - cpu_before
        out.seek(0)
        output = out.read().decode(errors="replace")
    return Finished(returncode, output, wall, cpu)


def leaf_has_name(path: Path, name: str) -> bool:
    """True if the first certificate in `path` names `name` in its SAN."""
    if not path.exists():
        return False
    leaf = x509.load_pem_x509_certificates(path.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return name in san.get_values_for_type(x509.DNSName)


def tail(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]


@dataclass
class Bench:
    """Where things are: the CA, its listener's trust anchor, tools and the work directory."""

    directory: str
    cafile: Path
    http01_port: int
    work: Path
    certbot: str
    lego: str
    certsmith: str

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "NO_PROXY": "127.0.0.1,localhost", **extra}

    def fresh_dir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.work))

    def record(self, label: str, name: str, done: Finished, cert: Path) -> Run:
        ok = done.returncode == 0 and leaf_has_name(cert, name)
        detail = "" if ok else f"exit {done.returncode}: {tail(done.output)}"
        return Run(label, name, done.wall, done.cpu, ok, detail)

    def certbot_once(self, rep: int) -> list[Run]:
        name, config = f"certbot-{rep}.test", self.fresh_dir("certbot")
        args = [
            self.certbot,
            "certonly",
            "--server",
            self.directory,
            "--standalone",
            "--http-01-port",
            str(self.http01_port),
            "--http-01-address",
            LOOPBACK,
            "--config-dir",
            str(config),
            "--work-dir",
            str(config),
            "--logs-dir",
            str(config),
            "--agree-tos",
            "-m",
            EMAIL,
            "--no-eff-email",
            "--non-interactive",
            "-d",
            name,
        ]
        env = self.env(REQUESTS_CA_BUNDLE=str(self.cafile))
        done = run_timed(args, env, config / "run.log")
        return [self.record("certbot", name, done, config / "live" / name / "cert.pem")]

    def lego_once(self, rep: int) -> list[Run]:
        name, path = f"lego-{rep}.test", self.fresh_dir("lego")
        args = [
            self.lego,
            "--server",
            self.directory,
            "--email",
            EMAIL,
            "--accept-tos",
            "--http",
            "--http.port",
            f"{LOOPBACK}:{self.http01_port}",
            "-d",
            name,
            "--path",
            str(path),
            "run",
        ]
        env = self.env(LEGO_CA_CERTIFICATES=str(self.cafile))
        done = run_timed(args, env, path / "run.log")
        return [self.record("lego", name, done, path / "certificates" / f"{name}.crt")]

    def certsmith_issue(self, name: str, config: Path, log: Path) -> Finished:
        args = [
            self.certsmith,
            "issue",
            "-d",
            name,
            "--server",
            self.directory,
            "--ca-bundle",
            str(self.cafile),
            "--standalone",
            "--http-01-port",
            str(self.http01_port),
            "--http-01-address",
            LOOPBACK,
            "--agree-tos",
            "--config-dir",
            str(config),
        ]
        return run_timed(args, self.env(), log)

    def certsmith_once(self, rep: int) -> list[Run]:
        """A fresh config directory (so a new account), then a second name in it."""
        config = self.fresh_dir("certsmith")
        runs = []
        for label, name in (
            ("certsmith", f"certsmith-{rep}.test"),
            ("certsmith, existing account", f"certsmith-again-{rep}.test"),
        ):
            done = self.certsmith_issue(name, config, config / f"{name}.log")
            runs.append(self.record(label, name, done, config / "live" / name / "cert.pem"))
        return runs


# --- (a) one certificate each ------------------------------------------------------------

LABELS = ["certbot", "lego", "certsmith", "certsmith, existing account"]


@dataclass
class Summary:
    label: str
    runs: list[Run] = field(default_factory=list)

    @property
    def good(self) -> list[Run]:
        return [r for r in self.runs if r.ok]

    def median(self, attribute: str) -> float:
        values = [getattr(r, attribute) for r in self.good]
        return statistics.median(values) if values else math.nan


def one_certificate_each(bench: Bench, repeat: int, chosen: list[str]) -> dict[str, Summary]:
    """The clients take turns within each repetition, so drift hits them alike."""
    steps = {
        "certbot": bench.certbot_once,
        "lego": bench.lego_once,
        "certsmith": bench.certsmith_once,
    }
    summaries = {label: Summary(label) for label in LABELS}
    for rep in range(repeat):
        for client in chosen:
            for run in steps[client](rep):
                summaries[run.label].runs.append(run)
                status = "ok" if run.ok else f"FAILED ({run.detail})"
                print(
                    f"  [{rep + 1}/{repeat}] {run.label:<28} {run.name:<26} "
                    f"wall {run.wall:6.2f} s  CPU {run.cpu:6.2f} s  {status}",
                    flush=True,
                )
    return {label: s for label, s in summaries.items() if s.runs}


def fmt(value: float, spec: str = ".2f") -> str:
    return "n/a" if math.isnan(value) else format(value, spec)


def ratio(value: float, base: float) -> str:
    if math.isnan(value) or math.isnan(base) or base == 0:
        return "n/a"
    return f"{value / base:.3f}"


def client_table(summaries: dict[str, Summary]) -> str:
    base = summaries.get("certbot")
    base_wall = base.median("wall") if base else math.nan
    base_cpu = base.median("cpu") if base else math.nan
    header = [
        "client",
        "ok",
        "wall median s",
        "wall min-max s",
        "CPU median s",
        "wall / certbot",
        "CPU / certbot",
    ]
    rows = [header]
    for s in summaries.values():
        walls = [r.wall for r in s.good]
        spread = f"{min(walls):.2f}-{max(walls):.2f}" if walls else "n/a"
        wall, cpu = s.median("wall"), s.median("cpu")
        rows.append(
            [
                s.label,
                f"{len(s.good)}/{len(s.runs)}",
                fmt(wall),
                spread,
                fmt(cpu),
                ratio(wall, base_wall),
                ratio(cpu, base_cpu),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(cells)

    out = [line(header), "-" * len(line(header))]
    out += [line(row) for row in rows[1:]]
    return "\n".join(out)


# --- (b) renewing a fleet ----------------------------------------------------------------


def fleet_names(count: int) -> list[str]:
    return [f"c{i:03d}.test" for i in range(count)]


async def issue_rest(config_dir: Path, names: list[str], concurrency: int) -> int:
    """Issue `names` in-process on the account and http-01 port that the CLI-issued first
    certificate stored, and write each renewal configuration as the CLI wrote the first
    one's. Returns how many were issued. Set-up only; not measured."""
    from certsmith.acme.identifiers import Identifier
    from certsmith.acme.keys import generate_private_key
    from certsmith.client.issuance import obtain
    from certsmith.client.runner import open_session, trust
    from certsmith.client.solvers.http01 import StandaloneHttp01
    from certsmith.client.store import Store

    store = Store(config_dir)
    template = store.load_renewal(fleet_names(1)[0])
    if template is None:
        raise RuntimeError(f"no renewal configuration for {fleet_names(1)[0]} in {config_dir}")
    standalone = template["solvers"]["standalone"]
    verify = trust(Path(template["ca_bundle"]))
    limit = asyncio.Semaphore(concurrency)
    issued = 0

    session = await open_session(store, template["server"], verify, None)
    async with session, StandaloneHttp01(standalone["port"], standalone["address"]) as solver:

        async def one(name: str) -> None:
            nonlocal issued
            async with limit:
                key = generate_private_key(template.get("key_type", "ec256"))
                chain = await obtain(session, [Identifier("dns", name)], [solver], key)
            store.save_certificate(name, chain, key)
            store.save_renewal(name, {**template, "domains": [name]})
            issued += 1

        results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
    for name, result in zip(names, results, strict=True):
        if isinstance(result, BaseException):
            print(f"  set-up: {name} failed: {result!r}", flush=True)
    return issued


def serials(config_dir: Path, names: list[str]) -> dict[str, int | None]:
    """The serial of each name's live certificate (None if there is none)."""
    found: dict[str, int | None] = {}
    for name in names:
        cert = config_dir / "live" / name / "cert.pem"
        found[name] = None
        if cert.exists():
            found[name] = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    return found


def renew_available(bench: Bench) -> bool:
    done = subprocess.run(
        [bench.certsmith, "renew", "--help"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=bench.env(),
        check=False,
        timeout=60,
    )
    return done.returncode == 0 and b"--force" in done.stdout


def wait_for_renew(bench: Bench, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if renew_available(bench):
            return True
        if time.monotonic() >= deadline:
            return False
        print("  `certsmith renew --force` is not there yet; waiting", flush=True)
        time.sleep(min(30.0, max(deadline - time.monotonic(), 0.0)))


@dataclass
class FleetResult:
    count: int
    issued: int
    driver_wall: float = math.nan
    driver_cpu: float = math.nan
    driver_concurrency: int = 0
    renew: Finished | None = None
    renewed: int = 0
    port_conflicts: int = 0
    peak_in_flight: int = 0
    note: str = ""


def peak_in_flight(output: str) -> int:
    """Most renewals between their "renewing NAME" and "renewed NAME"/"FAILED NAME" lines
    at once, as `renew` prints them when its output is not a terminal."""
    active: set[str] = set()
    peak = 0
    for line in output.splitlines():
        words = line.split()
        if len(words) < 2:
            continue
        name = words[1].rstrip(":")
        if words[0] == "renewing":
            active.add(name)
            peak = max(peak, len(active))
        elif words[0] in ("renewed", "FAILED"):
            active.discard(name)
    return peak


def renew_fleet(bench: Bench, count: int, concurrency: int, wait: float) -> FleetResult:
    config = bench.fresh_dir("fleet")
    names = fleet_names(count)
    first = bench.certsmith_issue(names[0], config, config / "issue-first.log")
    if first.returncode != 0:
        note = f"`certsmith issue -d {names[0]}` failed: {tail(first.output)}"
        return FleetResult(count, 0, note=note)
    cpu, start = own_cpu(), time.perf_counter()
    try:
        issued = 1 + asyncio.run(issue_rest(config, names[1:], concurrency))
    except Exception as err:  # reported, and (a)'s table still printed
        return FleetResult(count, 1, note=f"set-up failed: {err!r}")
    result = FleetResult(count, issued, time.perf_counter() - start, own_cpu() - cpu, concurrency)
    print(
        f"  set-up: {issued}/{count} issued ({count - 1} in-process in {result.driver_wall:.1f} s)",
        flush=True,
    )
    if issued != count:
        result.note = "set-up did not issue every certificate; renewal not measured"
        return result
    if not wait_for_renew(bench, wait):
        result.note = "`certsmith renew --force` does not exist; renewal not measured"
        return result
    before = serials(config, names)
    args = [bench.certsmith, "renew", "--force", "--config-dir", str(config)]
    result.renew = run_timed(args, bench.env(), config / "renew.log", timeout=1800)
    after = serials(config, names)
    result.renewed = sum(1 for n in names if after[n] is not None and after[n] != before[n])
    result.port_conflicts = result.renew.output.count("is in use")
    result.peak_in_flight = peak_in_flight(result.renew.output)
    return result


def fleet_report(result: FleetResult, summaries: dict[str, Summary]) -> str:
    lines = [f"{result.count} certificates issued for renewal: {result.issued}"]
    if result.renew is not None:
        lines += renew_lines(result, summaries)
    else:
        lines.append(result.note)
    rest = result.count - 1
    if rest > 0 and not math.isnan(result.driver_wall):
        lines.append(
            f"for reference, the set-up issued {rest} in-process with one session and one shared "
            f"standalone responder, {result.driver_concurrency} orders in flight: "
            f"{result.driver_wall:.2f} s wall, {result.driver_cpu:.2f} s CPU of this script "
            f"({result.driver_wall / rest * 1000:.0f} ms wall, "
            f"{result.driver_cpu / rest * 1000:.0f} ms CPU per certificate)"
        )
    return "\n".join(lines)


def renew_lines(result: FleetResult, summaries: dict[str, Summary]) -> list[str]:
    renew = result.renew
    assert renew is not None
    lines = [
        f"`renew --force`: exit {renew.returncode}, renewed {result.renewed}/{result.count}, "
        f"wall {renew.wall:.2f} s, CPU {renew.cpu:.2f} s "
        f"({renew.wall / result.count * 1000:.0f} ms wall, "
        f"{renew.cpu / result.count * 1000:.0f} ms CPU per certificate); at most "
        f"{result.peak_in_flight} renewal(s) in flight at once, by its output"
    ]
    for label in ("certsmith, existing account", "certsmith"):
        summary = summaries.get(label)
        if summary is None or math.isnan(summary.median("wall")):
            continue
        wall, cpu = summary.median("wall"), summary.median("cpu")
        lines.append(
            f"vs {result.count} x one issue ({label}: {wall:.2f} s wall, {cpu:.2f} s CPU): "
            f"wall {renew.wall / wall:.1f} x one = {renew.wall / (wall * result.count):.3f} "
            f"of {result.count} x; CPU {renew.cpu / cpu:.1f} x one = "
            f"{renew.cpu / (cpu * result.count):.3f} of {result.count} x"
        )
    if result.port_conflicts:
        lines.append(
            f"FINDING: {result.port_conflicts} http-01 port conflicts in the renew output: "
            "parallel renewals each bind the standalone port; they need one shared responder"
        )
    elif result.peak_in_flight == 1 and result.count > 1:
        lines.append(
            "FINDING: the renewals ran one at a time: all answer http-01 on the same standalone "
            "port, which `renew` gives to one renewal at a time; one shared responder would "
            "let them overlap"
        )
    if renew.returncode != 0 or result.renewed != result.count:
        lines.append(f"renew output (end): {tail(renew.output, 1500)}")
    return lines


# --- main --------------------------------------------------------------------------------


def goals(summaries: dict[str, Summary], fleet: FleetResult | None) -> list[str]:
    out = []
    certbot, ours = summaries.get("certbot"), summaries.get("certsmith")
    if certbot and ours and not math.isnan(ours.median("wall") + certbot.median("wall")):
        speedup = certbot.median("wall") / ours.median("wall")
        verdict = "met" if speedup >= 10 else "NOT met"
        out.append(
            f"goal: one certificate >= 10x faster than certbot (wall, fresh account): "
            f"{speedup:.1f}x, {verdict}"
        )
    again = summaries.get("certsmith, existing account")
    if fleet and fleet.renew and again and not math.isnan(again.median("wall")):
        times = fleet.renew.wall / again.median("wall")
        complete = fleet.renewed == fleet.count and fleet.renew.returncode == 0
        out.append(
            f"goal: {fleet.count} renewals well under {fleet.count}x one issue (wall, existing "
            f"account): {times:.1f}x"
            + ("" if complete else f", but only {fleet.renewed}/{fleet.count} renewed")
        )
    return out


def tool(path: str, what: str) -> str:
    found = shutil.which(path)
    if found is None:
        raise SystemExit(f"{what} not found at {path}")
    return found


def make_bench(target: Target, http01_port: int, work: Path, tools: dict[str, str]) -> Bench:
    return Bench(
        directory=target.directory,
        cafile=target.cafile,
        http01_port=http01_port,
        work=work,
        certbot=tools["certbot"],
        lego=tools["lego"],
        certsmith=tools["certsmith"],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="certificates per client")
    parser.add_argument("--fleet", type=int, default=100, help="certificates to renew; 0: skip")
    parser.add_argument(
        "--issue-concurrency", type=int, default=8, help="set-up orders in flight for the fleet"
    )
    parser.add_argument(
        "--renew-wait",
        type=float,
        default=0.0,
        help="seconds to wait for `certsmith renew --force` to exist",
    )
    parser.add_argument(
        "--only", choices=["certbot", "lego", "certsmith"], action="append", help="just these"
    )
    parser.add_argument("--certbot", default=str(ROOT / "build" / "certbot" / "bin" / "certbot"))
    parser.add_argument("--lego", default="lego")
    parser.add_argument("--certsmith", default=str(Path(sys.executable).parent / "certsmith"))
    parser.add_argument("--keep", action="store_true", help="keep the work directory and logs")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.fleet < 0 or args.issue_concurrency < 1:
        parser.error("--repeat and --issue-concurrency must be at least 1, --fleet at least 0")
    chosen = args.only or ["certbot", "lego", "certsmith"]
    tools = {
        "certbot": tool(args.certbot, "certbot") if "certbot" in chosen else "",
        "lego": tool(args.lego, "lego") if "lego" in chosen else "",
        "certsmith": tool(args.certsmith, "certsmith"),
    }
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="certsmith-clients-"))
    summaries: dict[str, Summary] = {}
    fleet: FleetResult | None = None
    try:
        http01_port = free_port()
        with challtestsrv(work) as (dns_server, dns):
            with pebble(work, http01_port, dns, PEBBLE_ENV) as target:
                bench = make_bench(target, http01_port, work, tools)
                print(
                    f"Pebble {target.directory}, http-01 on {LOOPBACK}:{http01_port}; "
                    f"{args.repeat} certificate(s) per client",
                    flush=True,
                )
                summaries = one_certificate_each(bench, args.repeat, chosen)
                if args.fleet:
                    print(f"renewing {args.fleet} certificates with certsmith", flush=True)
                    fleet = renew_fleet(bench, args.fleet, args.issue_concurrency, args.renew_wait)
                target.server.check_alive()
            dns_server.check_alive()
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{os.cpu_count()} cores; 1-minute load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other work on the machine skews wall times)"
    )
    print(client_table(summaries))
    if fleet is not None:
        print()
        print(fleet_report(fleet, summaries))
    for line in goals(summaries, fleet):
        print(line)
    return 0 if all(s.good for s in summaries.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
