"""External Account Binding (RFC 8555 §7.3.4): operator-issued MAC keys tie new ACME
accounts to accounts the CA already knows."""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry

from certsmith.acme.jose import b64url_encode, import_public_jwk, parse_flattened, thumbprint
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed, unauthorized
from certsmith.server.storage import Store, Tx
from certsmith.server.storage.models import EabKeyRow

_MAC_ALGORITHMS = ("HS256", "HS384", "HS512")


@dataclass(frozen=True)
class Binding:
    """A structurally sound binding; `verify` checks its MAC against the stored key."""

    key_id: str
    raw: dict[str, str]
    alg: str


def parse_binding(value: Any, account_thumbprint: str, url: str) -> Binding:
    """Shape checks: HS256/384/512, `kid`, `url` = newAccount URL, no nonce, payload = jwk."""
    if not isinstance(value, dict):
        raise malformed("externalAccountBinding must be a JWS object")
    parsed = parse_flattened(value)
    alg = parsed.protected.get("alg")
    if alg not in _MAC_ALGORITHMS:
        raise malformed(f"externalAccountBinding must use one of {list(_MAC_ALGORITHMS)}")
    if "nonce" in parsed.protected or "jwk" in parsed.protected:
        raise malformed("externalAccountBinding must carry neither 'nonce' nor 'jwk'")
    kid = parsed.protected.get("kid")
    if not isinstance(kid, str) or not kid:
        raise malformed("externalAccountBinding needs the EAB key id as 'kid'")
    if parsed.protected.get("url") != url:
        raise malformed("externalAccountBinding 'url' must be the newAccount URL")
    try:
        bound = thumbprint(import_public_jwk(parsed.json_payload()))
    except AcmeProblem as err:
        raise malformed("externalAccountBinding payload must be a public JWK") from err
    if bound != account_thumbprint:
        raise malformed("externalAccountBinding payload must be the account's public JWK")
    return Binding(kid, parsed.raw, str(alg))


async def bind(tx: Tx, binding: Binding, account_id: str) -> None:
    """Verify the MAC with the stored key and bind the key to the new account, once."""
    row = await tx.get(EabKeyRow, binding.key_id, for_update=True)
    if row is None or row.revoked_at is not None:
        raise unauthorized("unknown or revoked external account key id")
    if row.account_id is not None:
        raise unauthorized("this external account key is already bound to an account")
    registry = JWSRegistry(algorithms=[binding.alg], strict_check_header=False)
    raw: Any = binding.raw
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns about short HMAC keys
            jws.deserialize_json(raw, OctKey.import_key(row.hmac_key), registry=registry)
    except (JoseError, ValueError) as err:
        raise unauthorized("externalAccountBinding MAC does not verify") from err
    row.account_id = account_id


def required_problem() -> AcmeProblem:
    return AcmeProblem(
        ProblemType.EXTERNAL_ACCOUNT_REQUIRED,
        "this CA requires an externalAccountBinding; ask the operator for a key id and MAC key",
    )


# --- operator commands (`certsmith eab ...`) ---


async def add_key(store: Store, now: datetime, comment: str = "") -> tuple[str, str]:
    """A new key id and its base64url MAC key (256 bits), shown once to the operator."""
    key_id = "kid-" + secrets.token_urlsafe(12)
    mac = secrets.token_bytes(32)
    async with store.transaction() as tx:
        tx.add(EabKeyRow(key_id=key_id, hmac_key=mac, created_at=now, comment=comment))
    return key_id, b64url_encode(mac)


async def list_keys(store: Store) -> list[EabKeyRow]:
    async with store.transaction(write=False) as tx:
        return sorted(await tx.all(EabKeyRow), key=lambda r: r.created_at)


async def revoke_key(store: Store, key_id: str, now: datetime) -> bool:
    async with store.transaction() as tx:
        row = await tx.get(EabKeyRow, key_id, for_update=True)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now
        return True
