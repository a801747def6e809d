"""Account operations (RFC 8555 §7.3): register, find, update, roll the key, deactivate."""

from __future__ import annotations

import json
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry

from certsmith.acme.jose import AnyKey, b64url_decode, sign_jws
from certsmith.client.session import AcmeClientError, AcmeSession


def external_account_binding(
    key_id: str, hmac_key_b64: str, account_key: AnyKey, url: str
) -> dict[str, str]:
    """The newAccount `externalAccountBinding` JWS (RFC 8555 §7.3.4), MACed with HS256."""
    payload = json.dumps(account_key.as_dict(private=False)).encode()
    registry = JWSRegistry(algorithms=["HS256"], strict_check_header=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # short MAC keys are the CA's call
        signed = jws.serialize_json(
            {"protected": {"alg": "HS256", "kid": key_id, "url": url}},
            payload,
            OctKey.import_key(b64url_decode(hmac_key_b64)),
            registry=registry,
        )
    return dict(signed)  # type: ignore[arg-type]


async def register(
    session: AcmeSession,
    *,
    contact: list[str] | None = None,
    agree_tos: bool = False,
    eab: tuple[str, str] | None = None,
    only_existing: bool = False,
) -> dict[str, Any]:
    """Create the account for the session's key (or find it); sets `session.kid`."""
    url = await session.url("newAccount")
    payload: dict[str, Any] = {}
    if only_existing:
        payload["onlyReturnExisting"] = True
    else:
        if contact:
            payload["contact"] = contact
        if agree_tos:
            payload["termsOfServiceAgreed"] = True
        if eab is not None:
            payload["externalAccountBinding"] = external_account_binding(
                eab[0], eab[1], session.key, url
            )
    response = await session.post(url, payload, use_jwk=True)
    location = response.headers.get("Location")
    if not location:
        raise AcmeClientError("the CA's newAccount answer has no Location")
    session.kid = location
    return dict(response.json())


async def update_contact(session: AcmeSession, contact: list[str]) -> dict[str, Any]:
    assert session.kid is not None
    response = await session.post(session.kid, {"contact": contact})
    return dict(response.json())


async def show(session: AcmeSession) -> dict[str, Any]:
    assert session.kid is not None
    return await session.get_json(session.kid)


async def rollover(session: AcmeSession, new_key: AnyKey) -> None:
    """Key change with a JWS nested in a JWS (RFC 8555 §7.3.5); the session uses the new key."""
    assert session.kid is not None
    url = await session.url("keyChange")
    inner = sign_jws(
        {"account": session.kid, "oldKey": session.key.as_dict(private=False)},
        new_key,
        url=url,
        nonce=None,
    )
    await session.post(url, json.dumps(inner).encode())
    session.key = new_key


async def deactivate(session: AcmeSession) -> dict[str, Any]:
    assert session.kid is not None
    response = await session.post(session.kid, {"status": "deactivated"})
    return dict(response.json())
