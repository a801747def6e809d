"""`certsmith renew`: renew every stored certificate that is due, several at a time.

Each certificate is checked (ARI when its CA offers it, else its lifetime; see
`certsmith.client.renewal`), and the due ones are renewed as their stored configuration
says, by the same code as `certsmith issue`. At most `--concurrency` certificates are
checked or renewed at once; certificates that answer challenges on the same standalone
port, or through the same DNS hook, take turns, since one listener or hook serves one
renewal at a time. One certificate's failure never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import click

from certsmith.acme.problems import AcmeProblem
from certsmith.client import ari
from certsmith.client.commands import issue_certificate
from certsmith.client.renewal import Decision, decide, replaces_id
from certsmith.client.runner import describe, open_session, trust
from certsmith.client.session import AcmeClientError, AcmeSession
from certsmith.client.solving import ListenerPool
from certsmith.client.store import Store, default_config_dir

Status = Literal["renewed", "not-due", "would-renew", "failed"]
# A thing only one renewal may use at a time: ("port", port, address or None for all
# addresses) for a standalone listener, ("hook", command) for a DNS hook.
Resource = tuple[Hashable, ...]
_ANY_ADDRESS = (None, "", "0.0.0.0", "::")  # noqa: S104 -- names, not a bind


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class Outcome:
    name: str
    status: Status
    message: str
    trace: str | None = None  # the traceback of an unexpected error

    @property
    def line(self) -> str:
        if self.status == "renewed":
            return f"renewed {self.name} ({self.message})"
        if self.status == "not-due":
            return f"{self.name} not due until {self.message}"
        if self.status == "would-renew":
            return f"would renew {self.name} ({self.message})"
        return f"FAILED {self.name}: {self.message}"

    @property
    def short(self) -> str:
        """The line without the name, for a display that shows the name beside it."""
        return {
            "renewed": f"renewed, {self.message}",
            "not-due": f"not due until {self.message}",
            "would-renew": f"would renew ({self.message})",
            "failed": self.message,
        }[self.status]


# --- what may run together ---


def exclusive_resources(config: dict[str, Any]) -> frozenset[Resource]:
    """The listeners and hooks a renewal with this configuration holds while it runs."""
    solvers = config.get("solvers") or {}
    held: set[Resource] = set()
    for kind in ("standalone", "tls_alpn"):
        spec = solvers.get(kind)
        if isinstance(spec, dict) and spec.get("port") is not None:
            address = spec.get("address")
            address = None if address in _ANY_ADDRESS else address
            held.add(("port", int(spec["port"]), address, kind))
    hook = solvers.get("dns_hook")
    if isinstance(hook, dict) and hook.get("command"):
        held.add(("hook", str(hook["command"])))
    return frozenset(held)


def _collide(a: Resource, b: Resource) -> bool:
    if a[0] == "port" and b[0] == "port":
        if a == b:
            return False  # the same listener: one shared responder serves both
        return a[1] == b[1] and (a[2] is None or b[2] is None or a[2] == b[2])
    return a == b


def conflict(a: Iterable[Resource], b: Iterable[Resource]) -> bool:
    return any(_collide(x, y) for x in a for y in b)


class Slots:
    """At most `limit` holders at once, and never two whose resources collide."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: list[frozenset[Resource]] = []
        self._changed = asyncio.Condition()

    def _free(self, resources: frozenset[Resource]) -> bool:
        return len(self._held) < self.limit and not any(
            conflict(resources, other) for other in self._held
        )

    @contextlib.asynccontextmanager
    async def hold(
        self,
        resources: frozenset[Resource] = frozenset(),
        on_wait: Callable[[], None] | None = None,
    ) -> AsyncIterator[None]:
        async with self._changed:
            if on_wait is not None and not self._free(resources):
                on_wait()
            await self._changed.wait_for(lambda: self._free(resources))
            self._held.append(resources)
        try:
            yield
        finally:
            async with self._changed:
                self._held.remove(resources)
                self._changed.notify_all()


# --- showing progress ---


class Reporter(Protocol):
    def begin(self, names: list[str]) -> None: ...

    def status(self, name: str, text: str) -> None: ...

    def renewing(self, name: str, why: str) -> None: ...

    def finish(self, outcome: Outcome) -> None: ...

    def end(self) -> None: ...


class PlainReporter:
    """One line per event, for logs and pipes: failures on stderr, the rest on stdout."""

    def begin(self, names: list[str]) -> None:
        return None

    def status(self, name: str, text: str) -> None:
        return None

    def renewing(self, name: str, why: str) -> None:
        click.echo(f"renewing {name} ({why})")

    def finish(self, outcome: Outcome) -> None:
        click.echo(outcome.line, err=outcome.status == "failed")

    def end(self) -> None:
        return None


class TerminalReporter:
    """A live display on a terminal, redrawn in place: a bar for the whole run and a row per
    certificate at work; rows of certificates that were not due disappear when checked.

    Plain ANSI escapes, so the client needs no terminal library (and starts faster).
    """

    _MARKS: ClassVar[dict[Status, str]] = {
        "renewed": "\x1b[32m✓\x1b[0m",
        "would-renew": "\x1b[33m•\x1b[0m",
        "not-due": "·",
        "failed": "\x1b[31m✗\x1b[0m",
    }
    _WIDTH = 30

    def __init__(self) -> None:
        self._names: list[str] = []
        self._rows: dict[str, tuple[str, str]] = {}
        self._counts: dict[Status, int] = {}
        self._done = 0
        self._drawn = 0
        self._started = time.monotonic()

    def begin(self, names: list[str]) -> None:
        self._names = names
        self._draw()

    def status(self, name: str, text: str) -> None:
        self._rows[name] = ("…", text)
        self._draw()

    def renewing(self, name: str, why: str) -> None:
        self.status(name, f"renewing ({why})")

    def finish(self, outcome: Outcome) -> None:
        self._done += 1
        self._counts[outcome.status] = self._counts.get(outcome.status, 0) + 1
        if outcome.status == "not-due":
            self._rows.pop(outcome.name, None)
        else:
            self._rows[outcome.name] = (self._MARKS[outcome.status], outcome.short)
        self._draw()

    def end(self) -> None:
        self._draw()

    def _draw(self) -> None:
        total = max(len(self._names), 1)
        filled = self._WIDTH * self._done // total
        bar = "━" * filled + "\x1b[2m" + "━" * (self._WIDTH - filled) + "\x1b[0m"
        summary = ", ".join(f"{self._counts[s]} {_ORDER[s]}" for s in _ORDER if s in self._counts)
        elapsed = int(time.monotonic() - self._started)
        lines = [f"renew {bar} {self._done}/{len(self._names)} {summary} {elapsed}s"]
        lines += [
            f"  {mark} \x1b[1m{name}\x1b[0m {text}" for name, (mark, text) in self._rows.items()
        ]
        # Up over what was drawn before, clear to the end of the screen, draw again.
        prefix = f"\x1b[{self._drawn}F\x1b[J" if self._drawn else ""
        sys.stdout.write(prefix + "\n".join(lines) + "\n")
        sys.stdout.flush()
        self._drawn = len(lines)


# --- the work ---


async def _issue(
    store: Store,
    name: str,
    config: dict[str, Any],
    replaces: str | None,
    listeners: ListenerPool,
) -> Path:
    return await issue_certificate(
        store, name, config, None, replaces=replaces, listeners=listeners
    )


class _CheckSessions:
    """One session per CA (and trust) for the checks, opened on first use."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._opened: dict[tuple[str, str | None], tuple[AcmeSession | None, str | None]] = {}
        self._locks: dict[tuple[str, str | None], asyncio.Lock] = {}

    async def get(self, config: dict[str, Any]) -> tuple[AcmeSession | None, str | None]:
        """The session, or None and why there is none (then stored state still counts)."""
        key = (str(config["server"]), config.get("ca_bundle"))
        async with self._locks.setdefault(key, asyncio.Lock()):
            if key not in self._opened:
                try:
                    verify = trust(Path(key[1]) if key[1] else None)
                    session = await open_session(self._store, key[0], verify, None)
                except (AcmeProblem, AcmeClientError) as err:
                    self._opened[key] = (None, describe(err))
                else:
                    self._opened[key] = (session, None)
            return self._opened[key]

    async def close(self) -> None:
        for session, _ in self._opened.values():
            if session is not None:
                await session.close()


@dataclass(frozen=True)
class RenewOptions:
    force: bool = False
    dry_run: bool = False
    concurrency: int = 8


class Renewer:
    def __init__(
        self,
        store: Store,
        options: RenewOptions,
        reporter: Reporter,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.reporter = reporter
        self.rng = rng
        self._slots = Slots(options.concurrency)
        self._sessions = _CheckSessions(store)
        self._listeners = ListenerPool()

    async def run(self, names: list[str]) -> list[Outcome]:
        self.reporter.begin(names)
        try:
            return list(await asyncio.gather(*(self._one(name) for name in names)))
        finally:
            await self._sessions.close()
            await self._listeners.close()
            self.reporter.end()

    async def _one(self, name: str) -> Outcome:
        try:
            outcome = await self._renew(name)
        except (AcmeProblem, AcmeClientError) as err:  # OrderFailed is an AcmeClientError
            outcome = Outcome(name, "failed", describe(err))
        except OSError as err:
            where = f": {err.filename}" if err.filename else ""
            outcome = Outcome(name, "failed", f"{err.strerror or err}{where}")
        except Exception as err:
            outcome = Outcome(
                name, "failed", f"unexpected {type(err).__name__}: {err}", traceback.format_exc()
            )
        self.reporter.finish(outcome)
        return outcome

    def _config(self, name: str) -> dict[str, Any]:
        path = self.store.root / "renewal" / f"{name}.json"
        try:
            config = self.store.load_renewal(name)
        except ValueError as err:
            raise AcmeClientError(f"cannot read {path}: {err}") from err
        if config is None:
            raise AcmeClientError(f"no renewal configuration at {path}")
        missing = [key for key in ("server", "domains", "solvers") if not config.get(key)]
        if missing:
            raise AcmeClientError(f"{path} lacks {', '.join(missing)}")
        return config

    async def _check(self, name: str, force: bool) -> tuple[Decision, dict[str, Any]]:
        """Decide under NAME's lock, and remember what ARI said (unless a dry run)."""
        config = self._config(name)
        session, why_not = await self._sessions.get(config)
        with self.store.lock(name):
            config = self._config(name)
            live = self.store.live(name)
            if live is None:
                raise AcmeClientError(f"no certificate {name} in {self.store.root / 'live'}")
            certificate = live.certificate()
            now = datetime.now(UTC)
            if force:
                replaces = await replaces_id(session, certificate)
                return Decision(True, now, "forced", replaces), config
            decision, updated = await decide(session, certificate, config, now, self.rng)
            if why_not is not None and decision.ari_note is None:
                decision = replace(decision, ari_note=why_not)
            if updated != config and not self.options.dry_run:
                self.store.save_renewal(name, updated)
            return decision, updated

    async def _renew(self, name: str) -> Outcome:
        if self.store.live(name) is None:
            raise AcmeClientError(f"no certificate {name} in {self.store.root / 'live'}")
        async with self._slots.hold():
            self.reporter.status(name, "checking")
            decision, config = await self._check(name, self.options.force)
        if not decision.due:
            return Outcome(name, "not-due", f"{when(decision.at)} ({_grounds(decision)})")
        if decision.basis == "forced":
            why = "forced"
        else:
            why = f"due since {when(decision.at)} by {_grounds(decision)}"
        if self.options.dry_run:
            return Outcome(name, "would-renew", why)
        resources = exclusive_resources(config)
        waiting = ", ".join(_describe_resource(r) for r in sorted(resources, key=str))
        async with self._slots.hold(
            resources, lambda: self.reporter.status(name, f"waiting for {waiting or 'a slot'}")
        ):
            self.reporter.renewing(name, why)
            await _issue(
                self.store, name, ari.without_state(config), decision.replaces, self._listeners
            )
            live = self.store.live(name)
            if live is None:
                raise AcmeClientError(f"live/{name} is missing after renewal")
            expires = live.certificate().not_valid_after_utc
            await self._refresh(name)
        return Outcome(name, "renewed", f"expires {when(expires)}")

    async def _refresh(self, name: str) -> None:
        """Ask for the new certificate's renewalInfo right away (RFC 9773 §4.3); a failure
        here only means the next run asks."""
        with contextlib.suppress(AcmeProblem, AcmeClientError, OSError, ValueError):
            await self._check(name, force=False)


def _grounds(decision: Decision) -> str:
    parts = [decision.basis]
    if decision.explanation_url:
        parts.append(f"see {decision.explanation_url}")
    if decision.ari_note:
        parts.append(f"ARI: {decision.ari_note}")
    return "; ".join(parts)


def _describe_resource(resource: Resource) -> str:
    if resource[0] == "port":
        return f"port {resource[2] or '*'}:{resource[1]}"
    return f"DNS hook {resource[1]}"


def _names(store: Store, requested: tuple[str, ...]) -> list[str]:
    if requested:
        return list(dict.fromkeys(requested))
    # Dot-names in live/ are a crashed run's temporary links, never certificates.
    return [name for name in store.names() if not name.startswith(".")]


@click.command("renew")
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path),
    help="Store; default /etc/certsmith as root, else ~/.local/share/certsmith.",
)
@click.option(
    "--cert-name",
    "cert_names",
    multiple=True,
    help="Only this certificate (repeatable); default all in live/.",
)
@click.option("--force", is_flag=True, help="Renew even when not due.")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Certificates checked or renewed at once.",
)
@click.option("--dry-run", is_flag=True, help="Only say what is due; change nothing.")
def renew(
    config_dir: Path | None,
    cert_names: tuple[str, ...],
    force: bool,
    concurrency: int,
    dry_run: bool,
) -> None:
    """Renew the stored certificates that are due (by ARI, RFC 9773, or their lifetime).

    Exits non-zero when any renewal failed; the others are renewed all the same.
    """
    store = Store(config_dir or default_config_dir())
    names = _names(store, cert_names)
    if not names:
        click.echo(f"no certificates in {store.root}")
        return
    reporter: Reporter = TerminalReporter() if sys.stdout.isatty() else PlainReporter()
    options = RenewOptions(force=force, dry_run=dry_run, concurrency=concurrency)
    outcomes = asyncio.run(Renewer(store, options, reporter).run(names))
    for outcome in outcomes:
        if outcome.trace:
            click.echo(f"{outcome.name}: {outcome.trace}", err=True)
    counts = Counter(outcome.status for outcome in outcomes)
    shown = [status for status in _ORDER if counts[status] or status == "failed"]
    click.echo("summary: " + ", ".join(f"{counts[s]} {_ORDER[s]}" for s in shown))
    failed = [o.name for o in outcomes if o.status == "failed"]
    if failed:
        raise click.ClickException(
            f"{len(failed)} of {len(outcomes)} certificates not renewed: {', '.join(failed)}"
        )


_ORDER: dict[Status, str] = {
    "renewed": "renewed",
    "would-renew": "would renew",
    "not-due": "not due",
    "failed": "failed",
}
