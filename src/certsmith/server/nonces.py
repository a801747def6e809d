"""Replay nonces (RFC 8555 §6.5): HMAC-signed values plus a shared used-set.

Issuing costs one HMAC and no database write; redeeming checks the tag and age, then
inserts the nonce into the used-set. The HMAC key lives in the database, so every server
process on one database accepts every other's nonces exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from datetime import timedelta

from certsmith.acme.jose import b64url_decode, b64url_encode
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.clock import Clock
from certsmith.server.storage import Store, Tx

_RANDOM_BYTES = 12
_TAG_BYTES = 16
_PURGE_EVERY = 1000


def bad_nonce(detail: str) -> AcmeProblem:
    return AcmeProblem(ProblemType.BAD_NONCE, detail)


class NonceService:
    def __init__(self, store: Store, key: bytes, lifetime: timedelta, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._key = key
        self._lifetime = int(lifetime.total_seconds())
        self._redeemed = 0

    @classmethod
    async def create(cls, store: Store, lifetime: timedelta, clock: Clock) -> NonceService:
        async with store.transaction() as tx:
            key = await tx.secret("nonce-hmac", secrets.token_bytes(32))
        return cls(store, key, lifetime, clock)

    def issue(self) -> str:
        body = secrets.token_bytes(_RANDOM_BYTES) + struct.pack(">I", self._now())
        return b64url_encode(body + self._tag(body))

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:_TAG_BYTES]

    async def redeem(self, nonce: str) -> None:
        """Accept `nonce` once; badNonce if forged, expired or used before."""
        async with self._store.transaction() as tx:
            await self.redeem_in(tx, nonce)

    async def redeem_in(self, tx: Tx, nonce: str) -> None:
        """`redeem` inside a transaction the caller commits (and may roll back)."""
        body = self._check(nonce)
        issued = struct.unpack(">I", body[_RANDOM_BYTES:])[0]
        if not await tx.redeem_nonce(body.hex(), issued + self._lifetime):
            raise bad_nonce("nonce has already been used")
        self._redeemed += 1
        if self._redeemed % _PURGE_EVERY == 0:
            await tx.purge_used_nonces(self._now())

    def _check(self, nonce: str) -> bytes:
        try:
            raw = b64url_decode(nonce)
        except AcmeProblem:
            raise bad_nonce("nonce is not valid base64url") from None
        if len(raw) != _RANDOM_BYTES + 4 + _TAG_BYTES:
            raise bad_nonce("nonce was not issued by this server")
        body, tag = raw[: _RANDOM_BYTES + 4], raw[_RANDOM_BYTES + 4 :]
        if not hmac.compare_digest(tag, self._tag(body)):
            raise bad_nonce("nonce was not issued by this server")
        issued = struct.unpack(">I", body[_RANDOM_BYTES:])[0]
        if not 0 <= self._now() - issued <= self._lifetime:
            raise bad_nonce("nonce has expired")
        return body
