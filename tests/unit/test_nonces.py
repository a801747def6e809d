"""NonceService (RFC 8555 §6.5) on a real SQLite database, with a clock the test moves."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.clock import FakeClock
from certsmith.server.nonces import _PURGE_EVERY, NonceService
from certsmith.server.storage import Store
from certsmith.server.storage.models import UsedNonceRow

LIFETIME = timedelta(hours=1)
NONCE_BYTES = 12 + 4 + 16  # random, issue time, HMAC tag


def url_for(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(url_for(tmp_path / "certsmith.db"))
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
async def second_store(tmp_path: Path, store: Store) -> AsyncIterator[Store]:
    """Another process's view of the same database file: its own engine and write lock."""
    other = Store(url_for(tmp_path / "certsmith.db"))
    yield other
    await other.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def nonces(store: Store, clock: FakeClock) -> NonceService:
    return await NonceService.create(store, LIFETIME, clock)


def decode(nonce: str) -> bytes:
    return base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


async def assert_bad_nonce(service: NonceService, nonce: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        await service.redeem(nonce)
    assert excinfo.value.type is ProblemType.BAD_NONCE
    assert excinfo.value.http_status == 400


async def used_nonce_rows(store: Store) -> int:
    async with store.transaction(write=False) as tx:
        result = await tx.session.execute(select(func.count()).select_from(UsedNonceRow))
        return int(result.scalar_one())


# --- issuing and redeeming once ---


async def test_issued_nonces_are_unpadded_base64url_of_the_documented_size(
    nonces: NonceService,
) -> None:
    issued = {nonces.issue() for _ in range(50)}
    assert len(issued) == 50
    for nonce in issued:
        assert set(nonce) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert len(decode(nonce)) == NONCE_BYTES


async def test_a_nonce_redeems_once(nonces: NonceService, store: Store) -> None:
    nonce = nonces.issue()
    await nonces.redeem(nonce)
    assert await used_nonce_rows(store) == 1
    await assert_bad_nonce(nonces, nonce)


async def test_nonces_are_independent(nonces: NonceService) -> None:
    first, second = nonces.issue(), nonces.issue()
    await nonces.redeem(second)
    await nonces.redeem(first)
    await assert_bad_nonce(nonces, first)
    await assert_bad_nonce(nonces, second)


# --- forged and garbled nonces ---


def _flip(position: int) -> Callable[[str], str]:
    def forge(nonce: str) -> str:
        raw = bytearray(decode(nonce))
        raw[position] ^= 0x01
        return encode(bytes(raw))

    return forge


def _resize(delta: int) -> Callable[[str], str]:
    def forge(nonce: str) -> str:
        raw = decode(nonce)
        return encode(raw[:delta] if delta < 0 else raw + b"\0" * delta)

    return forge


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_flip(0), id="flipped-random-byte"),
        pytest.param(_flip(13), id="flipped-timestamp-byte"),
        pytest.param(_flip(16), id="flipped-first-tag-byte"),
        pytest.param(_flip(NONCE_BYTES - 1), id="flipped-last-tag-byte"),
        pytest.param(_resize(-1), id="one-byte-short"),
        pytest.param(_resize(-16), id="tag-cut-off"),
        pytest.param(_resize(1), id="one-byte-long"),
        pytest.param(lambda n: encode(b"\0" * NONCE_BYTES), id="zeros-of-the-right-length"),
        pytest.param(lambda n: n + "=", id="padded"),
        pytest.param(lambda n: n[:-1] + "!", id="bad-character"),
        pytest.param(lambda n: n[:-1] + "é", id="non-ascii"),
        pytest.param(lambda n: n[:-1], id="one-character-short"),
        pytest.param(lambda n: "", id="empty"),
        pytest.param(lambda n: "garbage", id="garbage"),
    ],
)
async def test_forged_or_garbled_nonce_is_bad_nonce(
    nonces: NonceService, forge: Callable[[str], str]
) -> None:
    genuine = nonces.issue()
    forged = forge(genuine)
    assert forged != genuine
    await assert_bad_nonce(nonces, forged)
    # The refusal did not use up the genuine nonce it was made from.
    await nonces.redeem(genuine)


async def test_a_nonce_from_another_database_is_bad_nonce(
    tmp_path: Path, nonces: NonceService, clock: FakeClock
) -> None:
    elsewhere = Store(url_for(tmp_path / "elsewhere.db"))
    try:
        await elsewhere.migrate()
        foreign = await NonceService.create(elsewhere, LIFETIME, clock)
        await assert_bad_nonce(nonces, foreign.issue())
    finally:
        await elsewhere.close()


# --- expiry ---


async def test_an_expired_nonce_is_bad_nonce(nonces: NonceService, clock: FakeClock) -> None:
    nonce = nonces.issue()
    clock.advance(LIFETIME + timedelta(seconds=1))
    await assert_bad_nonce(nonces, nonce)


async def test_a_nonce_near_the_end_of_its_lifetime_still_redeems(
    nonces: NonceService, clock: FakeClock
) -> None:
    nonce = nonces.issue()
    clock.advance(LIFETIME - timedelta(seconds=1))
    await nonces.redeem(nonce)
    await assert_bad_nonce(nonces, nonce)


async def test_purging_the_used_set_keeps_live_nonces_single_use(
    nonces: NonceService, store: Store, clock: FakeClock
) -> None:
    old = nonces.issue()
    await nonces.redeem(old)
    clock.advance(LIFETIME / 2)
    young = nonces.issue()
    await nonces.redeem(young)
    clock.advance(LIFETIME / 2 + timedelta(minutes=1))  # `old` has expired, `young` has not
    for _ in range(_PURGE_EVERY - 2):  # the last of these triggers a purge
        await nonces.redeem(nonces.issue())
    assert await used_nonce_rows(store) == _PURGE_EVERY - 1  # only `old` was purged
    await assert_bad_nonce(nonces, young)
    await assert_bad_nonce(nonces, old)


# --- several server processes on one database ---


async def test_two_processes_accept_each_others_nonces_exactly_once(
    store: Store, second_store: Store, clock: FakeClock
) -> None:
    first = await NonceService.create(store, LIFETIME, clock)
    second = await NonceService.create(second_store, LIFETIME, clock)
    from_first, from_second = first.issue(), second.issue()
    await second.redeem(from_first)
    await first.redeem(from_second)
    await assert_bad_nonce(first, from_first)
    await assert_bad_nonce(second, from_second)
    await assert_bad_nonce(second, from_first)
    await assert_bad_nonce(first, from_second)


async def test_a_restarted_process_accepts_nonces_issued_before_the_restart(
    tmp_path: Path, store: Store, clock: FakeClock
) -> None:
    before = await NonceService.create(store, LIFETIME, clock)
    issued, used = before.issue(), before.issue()
    await before.redeem(used)
    await store.close()
    restarted_store = Store(url_for(tmp_path / "certsmith.db"))
    try:
        after = await NonceService.create(restarted_store, LIFETIME, clock)
        await after.redeem(issued)
        await assert_bad_nonce(after, used)
    finally:
        await restarted_store.close()


async def test_racing_redemptions_on_two_processes_let_exactly_one_through(
    store: Store, second_store: Store, clock: FakeClock
) -> None:
    first = await NonceService.create(store, LIFETIME, clock)
    second = await NonceService.create(second_store, LIFETIME, clock)
    for _ in range(10):
        nonce = first.issue()
        outcomes = await asyncio.gather(
            first.redeem(nonce), second.redeem(nonce), return_exceptions=True
        )
        refused = [o for o in outcomes if isinstance(o, AcmeProblem)]
        assert len(refused) == 1, outcomes
        assert refused[0].type is ProblemType.BAD_NONCE
        assert sum(o is None for o in outcomes) == 1


async def test_processes_starting_together_agree_on_the_nonce_key(
    tmp_path: Path, clock: FakeClock
) -> None:
    # Four processes starting at once on a fresh database, five times over. A Tx.secret that
    # reads and then inserts loses at least one start in (nearly) every round, on the unique
    # secret name, so a return of that race does not pass by luck.
    for attempt in range(5):
        url = url_for(tmp_path / f"fresh-{attempt}.db")
        setup = Store(url)
        await setup.migrate()
        await setup.close()
        stores = [Store(url) for _ in range(4)]
        try:
            started = await asyncio.gather(
                *(NonceService.create(s, LIFETIME, clock) for s in stores),
                return_exceptions=True,
            )
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            services = [s for s in started if isinstance(s, NonceService)]
            for issuer in services:
                for redeemer in services:
                    await redeemer.redeem(issuer.issue())
        finally:
            for s in stores:
                await s.close()
