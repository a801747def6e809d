"""Renewal: ARI (RFC 9773) against a real HTTP responder, and `certsmith renew` against a
real `certsmith serve`, including runs killed while they write the store."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import random
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from cryptography.x509.oid import NameOID

from certsmith.acme.keys import generate_private_key
from certsmith.client import ari
from certsmith.client.renew_command import Slots, conflict, exclusive_resources
from certsmith.client.renewal import decide, is_due, renewal_time
from certsmith.client.runner import jwk_of
from certsmith.client.session import AcmeSession
from tests.client.ari_responder import Answer, AriResponder, window_answer
from tests.support import CERTSMITH, CaServer, free_port, trust

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


# --- certificates made here, with the AKI and serial a test wants ---

_ISSUER_KEY = ec.generate_private_key(ec.SECP256R1())


def make_certificate(
    *,
    not_before: datetime = NOW - 10 * DAY,
    lifetime: timedelta = 90 * DAY,
    serial: int | None = None,
    key_id: bytes | None = b"\x01" * 20,
    subject_key: ec.EllipticCurvePrivateKey | None = None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renewal test")])
    key = subject_key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test issuer")]))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
    )
    if key_id is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier(key_id, None, None), critical=False
        )
    return builder.sign(_ISSUER_KEY, hashes.SHA256())


# --- the certificate identifier (RFC 9773 §4.1) ---


def test_certificate_id_matches_the_rfc_example() -> None:
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    certificate = make_certificate(key_id=aki, serial=0x87654321)
    assert ari.certificate_id(certificate) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


@pytest.mark.parametrize(
    ("serial", "octets"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (0x7F, b"\x7f"),
        (0x80, b"\x00\x80"),
        (0xFF, b"\x00\xff"),
        (0x0100, b"\x01\x00"),
        (0x87654321, b"\x00\x87\x65\x43\x21"),
        (-1, b"\xff"),
        (-128, b"\x80"),
        (-129, b"\xff\x7f"),
    ],
)
def test_serial_octets_are_der_integer_contents(serial: int, octets: bytes) -> None:
    assert ari.serial_octets(serial) == octets


def test_certificate_without_authority_key_identifier_has_no_id() -> None:
    assert ari.certificate_id(make_certificate(key_id=None)) is None


# --- RenewalInfo objects, random times and Retry-After ---


def test_parse_renewal_info() -> None:
    window, explanation = ari.parse_renewal_info(
        {
            "suggestedWindow": {"start": "2026-03-10T00:00:00Z", "end": "2026-03-12T06:30:00Z"},
            "explanationURL": "https://ca.example/why",
        }
    )
    assert window.start == datetime(2026, 3, 10, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 12, 6, 30, tzinfo=UTC)
    assert explanation == "https://ca.example/why"
    window, explanation = ari.parse_renewal_info(
        {
            "suggestedWindow": {
                "start": "2026-03-10T01:00:00.123456789+01:00",
                "end": "2026-03-11t00:00:00z",
            }
        }
    )
    assert window.start == datetime(2026, 3, 10, 0, 0, 0, 123456, tzinfo=UTC)
    assert explanation is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {},
        {"suggestedWindow": None},
        {"suggestedWindow": {"start": "2026-03-10T00:00:00Z"}},
        {"suggestedWindow": {"start": "2026-03-10", "end": "2026-03-12"}},
        {"suggestedWindow": {"start": "2026-03-10T00:00:00", "end": "2026-03-12T00:00:00"}},
        {"suggestedWindow": {"start": 1773100800, "end": 1773273600}},
        # An end that is not after the start makes the whole answer unusable (§4.2).
        {"suggestedWindow": {"start": "2026-03-12T00:00:00Z", "end": "2026-03-12T00:00:00Z"}},
        {"suggestedWindow": {"start": "2026-03-12T00:00:00Z", "end": "2026-03-10T00:00:00Z"}},
    ],
)
def test_unusable_renewal_info_is_refused(body: object) -> None:
    with pytest.raises(ValueError):
        ari.parse_renewal_info(body)


def test_random_time_is_uniform_within_the_window() -> None:
    window = ari.Window(NOW, NOW + 2 * DAY)
    rng = random.Random(7)
    draws = [ari.random_time(window, rng) for _ in range(4000)]
    assert all(d in window for d in draws)
    # Uniform: each quarter of the window gets roughly a quarter of the draws.
    quarters = [0, 0, 0, 0]
    for draw in draws:
        quarters[min(int((draw - NOW) / (window.end - window.start) * 4), 3)] += 1
    assert all(800 < count < 1200 for count in quarters), quarters
    assert ari.random_time(window, random.Random(1)) == ari.random_time(window, random.Random(1))
    assert ari.random_time(window) in window


def test_retry_after() -> None:
    assert ari.retry_after(None, NOW) is None
    assert ari.retry_after("garbage", NOW) is None
    assert ari.retry_after("3600", NOW) == NOW + HOUR
    assert ari.retry_after(format_datetime(NOW + 2 * HOUR, usegmt=True), NOW) == NOW + 2 * HOUR
    # Bounded to [one minute, one day] from now (§4.3).
    assert ari.bounded(NOW + timedelta(seconds=5), NOW) == NOW + timedelta(minutes=1)
    assert ari.bounded(NOW - DAY, NOW) == NOW + timedelta(minutes=1)
    assert ari.bounded(NOW + 30 * DAY, NOW) == NOW + DAY
    assert ari.bounded(NOW + 3 * HOUR, NOW) == NOW + 3 * HOUR


# --- against a real HTTP server serving renewalInfo ---


@pytest.fixture
def responder() -> Iterator[AriResponder]:
    with AriResponder.running() as running:
        yield running


def session_for(directory: str) -> AcmeSession:
    return AcmeSession(directory, jwk_of(generate_private_key("ec256")), timeout=5)


async def test_fetch_is_a_plain_get(responder: AriResponder) -> None:
    certificate = make_certificate()
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None
    responder.answer(
        cert_id, window_answer(NOW + DAY, NOW + 2 * DAY, "7200", "https://ca.example/ari")
    )
    async with session_for(responder.directory) as session:
        base = await ari.renewal_info_base(session)
        assert base == responder.renewal_info
        info = await ari.fetch(session, base, cert_id, NOW)
    assert info.window == ari.Window(NOW + DAY, NOW + 2 * DAY)
    assert info.explanation_url == "https://ca.example/ari"
    assert info.next_check == NOW + 2 * HOUR
    assert responder.asked() == [("GET", f"/renewalInfo/{cert_id}")]


async def test_window_in_the_future_is_not_due_and_the_chosen_time_is_kept(
    responder: AriResponder,
) -> None:
    certificate = make_certificate(not_before=NOW - 80 * DAY)  # past two thirds already
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None and is_due(certificate, NOW)
    responder.answer(cert_id, window_answer(NOW + DAY, NOW + 2 * DAY, "3600"))
    async with session_for(responder.directory) as session:
        decision, config = await decide(session, certificate, {"server": "x"}, NOW)
        assert not decision.due  # ARI, not the lifetime, decides
        assert NOW + DAY <= decision.at <= NOW + 2 * DAY
        assert decision.basis.startswith("ARI window")
        assert decision.replaces == cert_id
        assert config["server"] == "x"
        assert config["ari_cert_id"] == cert_id
        assert config["ari_next_check"] == ari.format_timestamp(NOW + HOUR)
        assert config["ari_renew_at"] == ari.format_timestamp(decision.at)
        assert len(responder.asked()) == 1

        # Before Retry-After has passed the CA is not asked; the chosen moment stands.
        again, same = await decide(session, certificate, config, NOW + 30 * timedelta(minutes=1))
        assert (again.at, same) == (decision.at, config)
        assert len(responder.asked()) == 1

        # Asked again after it: the same window keeps the same moment.
        later = NOW + HOUR
        again, config = await decide(session, certificate, config, later)
        assert again.at == decision.at and len(responder.asked()) == 2
        assert config["ari_next_check"] == ari.format_timestamp(later + HOUR)

        # A new window gets a new moment inside it, and the moment comes due.
        responder.answer(cert_id, window_answer(NOW + 3 * HOUR, NOW + 4 * HOUR, "3600"))
        moved, config = await decide(session, certificate, config, NOW + 2 * HOUR)
        assert NOW + 3 * HOUR <= moved.at <= NOW + 4 * HOUR and not moved.due
        due, _ = await decide(session, certificate, config, NOW + 4 * HOUR)
        assert due.due and due.at == moved.at


async def test_window_in_the_past_is_due_now(responder: AriResponder) -> None:
    certificate = make_certificate(not_before=NOW - DAY)  # young by its lifetime
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None and not is_due(certificate, NOW)
    responder.answer(
        cert_id, window_answer(NOW - 2 * DAY, NOW - DAY, None, "https://ca.example/incident")
    )
    async with session_for(responder.directory) as session:
        decision, config = await decide(session, certificate, {}, NOW)
    assert decision.due and decision.at <= NOW - DAY
    assert decision.explanation_url == "https://ca.example/incident"
    assert config["ari_explanation_url"] == "https://ca.example/incident"
    # No Retry-After: ask again in six hours.
    assert config["ari_next_check"] == ari.format_timestamp(NOW + 6 * HOUR)


@pytest.mark.parametrize(
    ("header", "next_check"),
    [
        ("5", NOW + timedelta(minutes=1)),
        ("600", NOW + timedelta(minutes=10)),
        ("9999999", NOW + DAY),
        (format_datetime(NOW + 3 * HOUR, usegmt=True), NOW + 3 * HOUR),
        ("soon", NOW + 6 * HOUR),
    ],
)
async def test_retry_after_sets_the_next_check(
    responder: AriResponder, header: str, next_check: datetime
) -> None:
    certificate = make_certificate()
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None
    responder.answer(cert_id, window_answer(NOW + DAY, NOW + 2 * DAY, header))
    async with session_for(responder.directory) as session:
        _, config = await decide(session, certificate, {}, NOW)
    assert config["ari_next_check"] == ari.format_timestamp(next_check)


async def test_no_renewal_info_in_the_directory_falls_back_to_lifetime() -> None:
    certificate = make_certificate(lifetime=6 * DAY, not_before=NOW - 4 * DAY)
    stale = {"ari_cert_id": "x.y", "ari_renew_at": "2030-01-01T00:00:00Z", "server": "s"}
    with AriResponder.running(offer_ari=False) as responder:
        async with session_for(responder.directory) as session:
            decision, config = await decide(session, certificate, stale, NOW)
        assert responder.asked() == []
    assert decision.due and decision.at == renewal_time(certificate)
    assert decision.basis == "half its lifetime" and decision.replaces is None
    assert config == {"server": "s"}


@pytest.mark.parametrize(
    ("answer", "temporary"),
    [
        (Answer(404, {"type": "urn:ietf:params:acme:error:malformed"}), False),
        (Answer(400, b"not json"), False),
        (Answer(200, b"{not json"), False),
        (Answer(200, {"suggestedWindow": {"start": "2026-03-02T00:00:00Z"}}), False),
        (
            Answer(
                200,
                {
                    "suggestedWindow": {
                        "start": "2026-03-05T00:00:00Z",
                        "end": "2026-03-04T00:00:00Z",
                    }
                },
            ),
            False,
        ),
        (Answer(500, {"type": "urn:ietf:params:acme:error:serverInternal"}), True),
        (Answer(503, b""), True),
    ],
)
async def test_failed_renewal_info_falls_back_to_lifetime(
    responder: AriResponder, answer: Answer, temporary: bool
) -> None:
    certificate = make_certificate()
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None
    responder.answer(cert_id, answer)
    async with session_for(responder.directory) as session:
        decision, config = await decide(session, certificate, {}, NOW)
        assert not decision.due and decision.at == renewal_time(certificate)
        assert decision.basis == "two thirds of its lifetime"
        assert decision.ari_note and cert_id in decision.ari_note
        assert decision.replaces == cert_id  # the CA offers ARI, so newOrder names it
        assert config["ari_failures"] == 1
        if not temporary:
            assert config["ari_next_check"] == ari.format_timestamp(NOW + 6 * HOUR)
            return
        # Temporary failures back off: one minute, then two, then four.
        assert config["ari_next_check"] == ari.format_timestamp(NOW + timedelta(minutes=1))
        _, config = await decide(session, certificate, config, NOW + timedelta(minutes=1))
        expected = NOW + timedelta(minutes=3)
        assert config["ari_next_check"] == ari.format_timestamp(expected)
        _, config = await decide(session, certificate, config, expected)
        assert config["ari_next_check"] == ari.format_timestamp(expected + 4 * timedelta(minutes=1))
        assert config["ari_failures"] == 3
        assert len(responder.asked()) == 3


async def test_retry_after_on_an_error_is_honoured(responder: AriResponder) -> None:
    certificate = make_certificate()
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None
    responder.answer(cert_id, Answer(503, b"", {"Retry-After": "1800"}))
    async with session_for(responder.directory) as session:
        _, config = await decide(session, certificate, {}, NOW)
    assert config["ari_next_check"] == ari.format_timestamp(NOW + 30 * timedelta(minutes=1))


async def test_unreachable_renewal_info_falls_back_and_keeps_an_earlier_answer() -> None:
    certificate = make_certificate()
    cert_id = ari.certificate_id(certificate)
    assert cert_id is not None
    with AriResponder.running() as responder:
        responder.answer(cert_id, window_answer(NOW + DAY, NOW + 2 * DAY, "60"))
        session = session_for(responder.directory)
        first, config = await decide(session, certificate, {}, NOW)
    # The responder is gone: nothing listens on its port any more.
    try:
        later, config = await decide(session, certificate, config, NOW + HOUR)
    finally:
        await session.close()
    assert later.basis.startswith("ARI window") and later.at == first.at
    assert later.ari_note and "cannot reach" in later.ari_note
    assert config["ari_failures"] == 1
    assert config["ari_next_check"] == ari.format_timestamp(NOW + HOUR + timedelta(minutes=1))


async def test_state_of_another_certificate_is_dropped(responder: AriResponder) -> None:
    old, new = make_certificate(), make_certificate()
    old_id, new_id = ari.certificate_id(old), ari.certificate_id(new)
    assert old_id and new_id and old_id != new_id
    responder.answer(old_id, window_answer(NOW - DAY, NOW - HOUR, "60"))
    async with session_for(responder.directory) as session:
        decision, config = await decide(session, old, {}, NOW)
        assert decision.due
        # The renewed certificate's own renewalInfo is asked for; the old moment is gone.
        decision, config = await decide(session, new, config, NOW)
    assert not decision.due and config["ari_cert_id"] == new_id
    assert "ari_renew_at" not in config


async def test_expired_certificate_is_due_without_asking(responder: AriResponder) -> None:
    certificate = make_certificate(not_before=NOW - 100 * DAY)
    async with session_for(responder.directory) as session:
        decision, _ = await decide(session, certificate, {}, NOW)
    assert decision.due and responder.asked() == []


# --- what may run together ---


def test_exclusive_resources() -> None:
    def listens(port: int, address: str | None) -> dict[str, Any]:
        return {"solvers": {"standalone": {"port": port, "address": address}}}

    a, b = exclusive_resources(listens(80, "127.0.0.2")), exclusive_resources(listens(80, None))
    c = exclusive_resources(listens(80, "127.0.0.3"))
    d = exclusive_resources({"solvers": {"tls_alpn": {"port": 80, "address": "127.0.0.2"}}})
    assert conflict(a, b) and conflict(c, b) and conflict(a, d) and not conflict(a, c)
    assert not conflict(a, exclusive_resources(listens(81, "127.0.0.2")))
    # The same listener twice is one shared responder, so it is no conflict.
    assert not conflict(a, exclusive_resources(listens(80, "127.0.0.2")))
    hook = {"solvers": {"dns_hook": {"command": "/usr/local/bin/dns"}}}
    assert conflict(exclusive_resources(hook), exclusive_resources(hook))
    assert exclusive_resources({"solvers": {"webroot": "/srv/www"}}) == frozenset()


async def test_slots_bound_concurrency_and_separate_conflicts() -> None:
    slots = Slots(3)
    running: list[frozenset[Any]] = []
    peak = 0
    overlaps: list[tuple[str, str]] = []
    names: dict[frozenset[Any], str] = {}

    async def job(name: str, resources: frozenset[Any]) -> None:
        nonlocal peak
        names[resources] = name
        async with slots.hold(resources):
            overlaps.extend((name, names[r]) for r in running if conflict(r, resources))
            running.append(resources)
            peak = max(peak, len(running))
            await asyncio.sleep(0.02)
            running.remove(resources)

    port = exclusive_resources({"solvers": {"standalone": {"port": 80, "address": None}}})
    others = [
        exclusive_resources({"solvers": {"standalone": {"port": 80 + i, "address": None}}})
        for i in range(1, 7)
    ]
    await asyncio.gather(
        *(job(f"same{i}", port | {("tag", i)}) for i in range(3)),
        *(job(f"other{i}", r) for i, r in enumerate(others)),
    )
    assert overlaps == [] and peak == 3


# --- `certsmith renew` against a real CA ---


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CERTSMITH, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def issue(
    ca: CaServer,
    store: Path,
    name: str,
    domain: str,
    address: str,
    *extra: str,
    server: str | None = None,
) -> x509.Certificate:
    result = cli(
        "issue",
        "-d",
        domain,
        "--cert-name",
        name,
        "--server",
        server or ca.directory,
        "--ca-bundle",
        str(ca.root),
        "--agree-tos",
        "--standalone",
        "--http-01-port",
        str(ca.http01_port),
        "--http-01-address",
        address,
        "--config-dir",
        str(store),
        *extra,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return live_certificate(store, name)


def live_certificate(store: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((store / "live" / name / "cert.pem").read_bytes())


def live_version(store: Path, name: str) -> str:
    return os.readlink(store / "live" / name)


def assert_whole(live: Path) -> x509.Certificate:
    """live/NAME holds a certificate and the key it certifies, and a readable chain."""
    certificate = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    key = load_pem_private_key((live / "privkey.pem").read_bytes(), None)
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert certificate.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    chain = x509.load_pem_x509_certificates((live / "fullchain.pem").read_bytes())
    assert chain[0] == certificate
    return certificate


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# Three IP identifiers on three loopback addresses: three listeners that can run at once.
PARALLEL = [(f"ip{i}", f"127.0.0.{i}") for i in (2, 3, 4)]


def test_renew_not_due_then_forced_in_parallel(ca_server: CaServer, tmp_path: Path) -> None:
    store, hooks = tmp_path / "store", tmp_path / "hooks"
    hooks.mkdir()
    hook = (
        f'env | grep ^CERTSMITH_ | sort > "{hooks}/$CERTSMITH_CERT_NAME.env" && '
        f'cp "$CERTSMITH_CERT" "{hooks}/$CERTSMITH_CERT_NAME.pem"'
    )
    first = {
        name: issue(ca_server, store, name, ip, ip, "--deploy-hook", hook) for name, ip in PARALLEL
    }
    for path in hooks.iterdir():
        path.unlink()

    result = cli("renew", "--config-dir", str(store))
    assert result.returncode == 0, result.stderr
    for name, _ in PARALLEL:
        assert re.search(rf"^{name} not due until \S+ \S+ UTC \(two thirds", result.stdout, re.M)
        assert live_version(store, name) == f"../archive/{name}/1"
    assert "summary: 3 not due, 0 failed" in result.stdout
    assert list(hooks.iterdir()) == []

    result = cli("renew", "--config-dir", str(store), "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    out = lines(result.stdout)
    # All three were under way before the first finished: they ran in parallel.
    starts = [i for i, line in enumerate(out) if line.startswith("renewing ")]
    ends = [i for i, line in enumerate(out) if line.startswith("renewed ")]
    assert len(starts) == len(ends) == 3 and max(starts) < min(ends), out
    assert out[-1] == "summary: 3 renewed, 0 failed"
    assert "Traceback" not in result.stderr
    for name, ip in PARALLEL:
        assert live_version(store, name) == f"../archive/{name}/2"
        renewed = assert_whole(store / "live" / name)
        assert renewed.serial_number != first[name].serial_number
        assert (
            f"renewed {name} (expires {renewed.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC)" in out
        )
        env = dict(line.split("=", 1) for line in (hooks / f"{name}.env").read_text().splitlines())
        assert env["CERTSMITH_CERT_NAME"] == name
        assert env["CERTSMITH_DOMAINS"] == ip
        assert env["CERTSMITH_FULLCHAIN"] == str(store / "live" / name / "fullchain.pem")
        hooked = x509.load_pem_x509_certificate((hooks / f"{name}.pem").read_bytes())
        assert hooked.serial_number == renewed.serial_number

    # One at a time when asked: each finishes before the next starts.
    result = cli("renew", "--config-dir", str(store), "--force", "--concurrency", "1")
    assert result.returncode == 0, result.stderr
    kinds = [line.split()[0] for line in lines(result.stdout)[:-1]]
    assert kinds == ["renewing", "renewed"] * 3
    assert all(live_version(store, n) == f"../archive/{n}/3" for n, _ in PARALLEL)

    # A dry run says what it would do and changes nothing.
    result = cli("renew", "--config-dir", str(store), "--force", "--dry-run", "--cert-name", "ip2")
    assert result.returncode == 0, result.stderr
    assert lines(result.stdout) == ["would renew ip2 (forced)", "summary: 1 would renew, 0 failed"]
    assert live_version(store, "ip2") == "../archive/ip2/3"


def test_renew_shows_progress_on_a_terminal(ca_server: CaServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    issue(ca_server, store, "tty", "127.0.0.5", "127.0.0.5")
    main, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "30"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [*CERTSMITH, "renew", "--config-dir", str(store), "--force"],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        env=env,
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(main)
    assert process.wait(30) == 0, output
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace"))
    assert "renew" in text and "1/1" in text and "━" in text  # the bar
    assert "✓" in text and "tty" in text and "renewed, expires" in text
    assert "summary: 1 renewed, 0 failed" in text
    assert live_version(store, "tty") == "../archive/tty/2"


def test_same_port_renewals_share_one_responder(ca_server: CaServer, tmp_path: Path) -> None:
    """Two certificates whose standalone listeners share 127.0.0.1:PORT renew at once,
    answered by one responder the run keeps open."""
    store = tmp_path / "store"
    names = ["turn-a", "turn-b"]
    for name in names:
        issue(ca_server, store, name, f"{name}.renew.test", "127.0.0.1")
    result = cli("renew", "--config-dir", str(store), "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "summary: 2 renewed, 0 failed" in result.stdout
    assert all(live_version(store, n) == f"../archive/{n}/2" for n in names)
    lines = result.stdout.splitlines()
    first_done = min(i for i, line in enumerate(lines) if line.startswith("renewed "))
    started = [line for line in lines[:first_done] if line.startswith("renewing ")]
    assert len(started) == 2, result.stdout


def test_one_failure_does_not_stop_the_others(ca_server: CaServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    for name, ip in PARALLEL:
        issue(ca_server, store, name, ip, ip)
    # ip3 now wants a name it holds no authorization for, and listens where the CA never
    # looks (a port where nothing else listens): its http-01 validation finds nothing.
    config_path = store / "renewal" / "ip3.json"
    config = json.loads(config_path.read_text())
    config["domains"] = ["127.0.0.9"]
    config["solvers"]["standalone"] = {"port": free_port(), "address": "127.0.0.9"}
    config_path.write_text(json.dumps(config))

    result = cli("renew", "--config-dir", str(store), "--force")
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"^FAILED ip3: \S", result.stderr, re.M), result.stderr
    assert "1 of 3 certificates not renewed: ip3" in result.stderr
    assert "summary: 2 renewed, 1 failed" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert live_version(store, "ip2") == "../archive/ip2/2"
    assert live_version(store, "ip4") == "../archive/ip4/2"
    assert live_version(store, "ip3") == "../archive/ip3/1"
    assert_whole(store / "live" / "ip3")

    # Named certificates only; an unknown name and a broken configuration are failures too.
    (store / "renewal" / "ip4.json").write_text("{not json")
    result = cli(
        "renew", "--config-dir", str(store), "--cert-name", "ip2", "--cert-name", "nope",
        "--cert-name", "ip4",
    )  # fmt: skip
    assert result.returncode == 1
    assert "ip2 not due until" in result.stdout
    assert re.search(r"^FAILED nope: no certificate nope in ", result.stderr, re.M)
    assert re.search(r"^FAILED ip4: cannot read .*ip4\.json", result.stderr, re.M)
    assert "Traceback" not in result.stdout + result.stderr


def test_renew_with_ari(ca_server: CaServer, tmp_path: Path) -> None:
    """The CA's own endpoints behind a directory that adds renewalInfo."""
    upstream = httpx.get(ca_server.directory, verify=trust(ca_server.root)).json()
    store = tmp_path / "store"
    with AriResponder.running(upstream) as responder:
        old = issue(ca_server, store, "ari", "127.0.0.6", "127.0.0.6", server=responder.directory)
        old_id = ari.certificate_id(old)
        assert old_id is not None
        now = datetime.now(UTC)
        # The CA wants this young certificate replaced now; later ones in a month.
        responder.answer(old_id, window_answer(now - 2 * DAY, now - DAY, "3600"))
        responder.default = window_answer(now + 30 * DAY, now + 31 * DAY, "7200")

        result = cli("renew", "--config-dir", str(store))
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"^renewing ari \(due since .* by ARI window ", result.stdout, re.M)
        assert live_version(store, "ari") == "../archive/ari/2"
        new = assert_whole(store / "live" / "ari")
        new_id = ari.certificate_id(new)
        assert new_id is not None and new_id != old_id
        # The new certificate's renewalInfo was asked for right after issuance.
        assert responder.asked(new_id) == [("GET", f"/renewalInfo/{new_id}")]
        config = json.loads((store / "renewal" / "ari.json").read_text())
        assert config["ari_cert_id"] == new_id
        renew_at = ari.parse_timestamp(config["ari_renew_at"])
        assert now + 30 * DAY <= renew_at <= now + 31 * DAY
        next_check = ari.parse_timestamp(config["ari_next_check"])
        assert now + 2 * HOUR <= next_check <= datetime.now(UTC) + 2 * HOUR

        result = cli("renew", "--config-dir", str(store))
        assert result.returncode == 0, result.stderr
        shown = renew_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        assert f"ari not due until {shown} (ARI window " in result.stdout
        # Retry-After has not passed: the CA was not asked again.
        assert len(responder.asked(new_id)) == 1
        assert all(method == "GET" for method, _ in responder.asked())


# --- crash safety: killed while writing the store ---

DRIVER = """
import json, sys
from pathlib import Path
from certsmith.acme.keys import load_private_key
from certsmith.client.store import Store

store = Store(Path(sys.argv[1]))
pairs = [(p["chain"], load_private_key(p["key"].encode())) for p in json.load(open(sys.argv[2]))]
print("ready", flush=True)
n = 0
while True:
    chain, key = pairs[n % len(pairs)]
    store.save_certificate("site", chain, key)
    n += 1
"""


def _pairs(count: int) -> list[dict[str, str]]:
    pairs = []
    for _ in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = make_certificate(subject_key=key, not_before=datetime.now(UTC) - HOUR)
        issuer = make_certificate(not_before=datetime.now(UTC) - HOUR)
        chain = leaf.public_bytes(Encoding.PEM) + issuer.public_bytes(Encoding.PEM)
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        pairs.append({"chain": chain.decode(), "key": pem.decode()})
    return pairs


def test_store_write_killed_at_random_moments(tmp_path: Path) -> None:
    store, pairs_file, driver = tmp_path / "store", tmp_path / "pairs.json", tmp_path / "drive.py"
    pairs_file.write_text(json.dumps(_pairs(4)))
    driver.write_text(DRIVER)
    rng = random.Random(20260301)
    versions = set()
    for _ in range(40):
        process = subprocess.Popen(
            [sys.executable, str(driver), str(store), str(pairs_file)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0, 0.08))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process.stdout.close()
        if not (store / "live" / "site").exists():
            continue  # killed before the very first version was linked
        assert_whole(store / "live" / "site")
        versions.add(live_version(store, "site"))
    assert len(versions) > 10  # the kills landed at many different points
    # ... and some in the middle of a write: half-written versions and temporary files.
    archive = store / "archive" / "site"
    partial = [v for v in archive.iterdir() if len(list(v.glob("*.pem"))) < 4]
    leftovers = list(store.rglob(".*.tmp")) + list((store / "live").glob(".*.link"))
    assert partial or leftovers
    assert all(live_version(store, "site") != f"../archive/site/{v.name}" for v in partial)


def test_renew_killed_midway_leaves_live_whole(ca_server: CaServer, tmp_path: Path) -> None:
    store = tmp_path / "store"
    names = [("kill-a", "127.0.0.7"), ("kill-b", "127.0.0.8")]
    for name, ip in names:
        issue(ca_server, store, name, ip, ip)
    rng = random.Random(7)
    for _ in range(5):
        process = subprocess.Popen(
            [*CERTSMITH, "renew", "--config-dir", str(store), "--force"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        for name, _ in names:
            assert_whole(store / "live" / name)
    # A link left by a run killed between making it and renaming it is not a certificate.
    os.symlink("../archive/kill-a/1", store / "live" / ".kill-a.0badc0de.link")
    result = cli("renew", "--config-dir", str(store), "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ".kill-a" not in result.stdout + result.stderr
    assert "summary: 2 renewed, 0 failed" in result.stdout
    for name, _ in names:
        assert_whole(store / "live" / name)
