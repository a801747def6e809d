"""JWS in the shape ACME uses it (RFC 8555 §6.2), on joserfc for the cryptography.

Only the flattened JSON serialization with a protected header is accepted; the
algorithm, key and header rules live here so the server checks them in one place.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import warnings
from dataclasses import dataclass
from typing import Any

from joserfc import jwk, jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter, is_str, is_url

from certsmith.acme.problems import AcmeProblem, ProblemType, malformed

# RFC 8555 §6.2: MUST support ES256, SHOULD support EdDSA; RS256 is what most clients use.
# "Ed25519" is the fully specified name for EdDSA on Curve25519 (RFC 9864).
ALLOWED_ALGORITHMS: tuple[str, ...] = (
    "ES256",
    "ES384",
    "ES512",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "EdDSA",
    "Ed25519",
)
_ACME_HEADERS = {
    "nonce": HeaderParameter("Anti-replay nonce (RFC 8555 §6.5.2)", is_str),
    "url": HeaderParameter("Request URL (RFC 8555 §6.4)", is_url),
}
# A JWK for RSA-4096 alone is ~750 bytes; joserfc's default cap of 512 would refuse it.
_MAX_HEADER_BYTES = 8192
_MAX_BODY_BYTES = 256 * 1024

_B64URL = re.compile(r"[A-Za-z0-9_-]*")

AnyKey = jwk.ECKey | jwk.RSAKey | jwk.OKPKey


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259 §6)")


def _no_unpaired_surrogates(value: Any) -> None:
    """Strings must be encodable as UTF-8; JSON escapes can smuggle in lone surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads_strict(data: bytes, what: str) -> Any:
    """JSON as RFC 8259 §8.1 demands it: UTF-8 text, no NaN/Infinity, sane nesting;
    anything else is `malformed` naming `what`."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
        _no_unpaired_surrogates(value)
    except (ValueError, UnicodeError, RecursionError) as err:
        raise malformed(f"{what} is not valid JSON") from err
    return value


def b64url_decode(value: str) -> bytes:
    """Decode unpadded base64url, refusing padding and characters outside the alphabet."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise malformed("base64url values must be unpadded strings of A-Z a-z 0-9 - _")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as err:
        raise malformed("invalid base64url encoding") from err


def b64url_encode(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


@functools.lru_cache(maxsize=len(ALLOWED_ALGORITHMS) + 4)
def _registry(alg: str) -> JWSRegistry:
    registry = JWSRegistry(header_registry=_ACME_HEADERS, algorithms=[alg])
    registry.max_header_length = _MAX_HEADER_BYTES
    registry.max_payload_length = _MAX_BODY_BYTES
    return registry


def import_public_jwk(value: Any) -> AnyKey:
    """A public JWK from a header, refusing private and symmetric keys (badPublicKey)."""
    if not isinstance(value, dict):
        raise malformed("jwk must be a JSON object")
    if value.get("kty") not in ("EC", "RSA", "OKP"):
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, "jwk must be an EC, RSA or OKP public key")
    if any(name in value for name in ("d", "p", "q", "dp", "dq", "qi", "oth", "k")):
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, "jwk must not carry private key material")
    try:
        with warnings.catch_warnings():
            # joserfc warns about short RSA keys; key policy refuses them with badPublicKey.
            warnings.simplefilter("ignore", SecurityWarning)
            key = jwk.import_key(value)
    except (JoseError, ValueError, TypeError, KeyError) as err:
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, f"unusable jwk: {err}") from err
    if not isinstance(key, jwk.ECKey | jwk.RSAKey | jwk.OKPKey):
        raise AcmeProblem(ProblemType.BAD_PUBLIC_KEY, "unsupported jwk type")
    return key


def thumbprint(key: AnyKey) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url."""
    return key.thumbprint()


def key_authorization(token: str, key: AnyKey) -> str:
    """RFC 8555 §8.1: token '.' thumbprint of the account key."""
    return f"{token}.{thumbprint(key)}"


@dataclass(frozen=True)
class ParsedJws:
    """A flattened JWS whose structure has been checked but whose signature has not."""

    raw: dict[str, str]
    protected: dict[str, Any]
    payload: bytes

    @property
    def alg(self) -> str:
        return str(self.protected["alg"])

    @property
    def nonce(self) -> str:
        return str(self.protected["nonce"])

    @property
    def url(self) -> str:
        return str(self.protected["url"])

    @property
    def kid(self) -> str | None:
        kid = self.protected.get("kid")
        return str(kid) if kid is not None else None

    @property
    def jwk(self) -> dict[str, Any] | None:
        value = self.protected.get("jwk")
        return value if isinstance(value, dict) else None

    @property
    def is_post_as_get(self) -> bool:
        return self.raw["payload"] == ""

    def json_payload(self) -> dict[str, Any]:
        """The payload as a JSON object, or malformed."""
        value = loads_strict(self.payload, "payload")
        if not isinstance(value, dict):
            raise malformed("payload must be a JSON object")
        return value


def parse_jws(body: bytes | dict[str, Any], *, require_nonce: bool = True) -> ParsedJws:
    """Check the shape ACME demands of a JWS (RFC 8555 §6.2); does not verify it."""
    parsed = parse_flattened(body)
    _check_protected(parsed.protected, require_nonce=require_nonce)
    return parsed


def parse_flattened(body: bytes | dict[str, Any]) -> ParsedJws:
    """A flattened JWS with a protected header only; no header policy applied."""
    if isinstance(body, bytes):
        if len(body) > _MAX_BODY_BYTES:
            raise malformed("request body too large")
        doc = loads_strict(body, "request body")
    else:
        doc = body
    if not isinstance(doc, dict):
        raise malformed("request body must be a JWS object")
    if "signatures" in doc:
        raise malformed("JWS general serialization is not allowed; use the flattened form")
    if "header" in doc:
        raise malformed("JWS unprotected header must not be used (RFC 8555 §6.2)")
    unknown = set(doc) - {"protected", "payload", "signature"}
    if unknown:
        raise malformed(f"unexpected JWS members: {sorted(unknown)}")
    for name in ("protected", "payload", "signature"):
        if not isinstance(doc.get(name), str):
            raise malformed(f"JWS member {name!r} missing or not a string")
    protected = loads_strict(b64url_decode(doc["protected"]), "JWS protected header")
    if not isinstance(protected, dict):
        raise malformed("JWS protected header must be a JSON object")
    payload = b64url_decode(doc["payload"])
    b64url_decode(doc["signature"])
    return ParsedJws(raw=doc, protected=protected, payload=payload)


def _check_protected(protected: dict[str, Any], *, require_nonce: bool) -> None:
    alg = protected.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise AcmeProblem(
            ProblemType.BAD_SIGNATURE_ALGORITHM,
            f"JWS algorithm {alg!r} is not supported",
            extra={"algorithms": list(ALLOWED_ALGORITHMS)},
        )
    if ("jwk" in protected) == ("kid" in protected):
        raise malformed("JWS protected header must have exactly one of 'jwk' and 'kid'")
    if "kid" in protected and not isinstance(protected["kid"], str):
        raise malformed("JWS 'kid' must be a string")
    if "crit" in protected or "b64" in protected:
        raise malformed("JWS 'crit' and 'b64' headers are not allowed")
    if not isinstance(protected.get("url"), str):
        raise malformed("JWS protected header must contain a 'url' string")
    if require_nonce and not isinstance(protected.get("nonce"), str):
        raise AcmeProblem(ProblemType.BAD_NONCE, "JWS protected header must contain a 'nonce'")


def _check_alg_fits_key(alg: str, key: AnyKey) -> None:
    fits: dict[str, dict[str, tuple[str, ...]]] = {
        "EC": {"P-256": ("ES256",), "P-384": ("ES384",), "P-521": ("ES512",)},
        "OKP": {"Ed25519": ("EdDSA", "Ed25519")},
    }
    if isinstance(key, jwk.RSAKey):
        ok = alg.startswith(("RS", "PS"))
    else:
        curve = str(key.dict_value.get("crv"))
        ok = alg in fits[key.key_type].get(curve, ())
    if not ok:
        raise AcmeProblem(
            ProblemType.BAD_SIGNATURE_ALGORITHM,
            f"JWS algorithm {alg} does not fit the key",
            extra={"algorithms": list(ALLOWED_ALGORITHMS)},
        )


def verify_jws(parsed: ParsedJws, key: AnyKey) -> None:
    """Verify the signature with `key`; a bad one is malformed (RFC 8555 §6.2)."""
    _check_alg_fits_key(parsed.alg, key)
    with warnings.catch_warnings():
        # joserfc warns that "EdDSA" is superseded by "Ed25519" (RFC 9864); clients still
        # send it and RFC 8555 names it, so it stays accepted.
        warnings.simplefilter("ignore", SecurityWarning)
        try:
            raw: Any = parsed.raw
            jws.deserialize_json(raw, key, registry=_registry(parsed.alg))
        except (JoseError, ValueError, TypeError) as err:
            raise malformed("JWS signature verification failed") from err


def sign_jws(
    payload: bytes | dict[str, Any] | None,
    key: AnyKey,
    *,
    url: str,
    nonce: str | None,
    kid: str | None = None,
    alg: str | None = None,
) -> dict[str, str]:
    """A flattened JWS as ACME wants it; `payload=None` is POST-as-GET."""
    alg = alg or default_alg(key)
    header: dict[str, Any] = {"alg": alg, "url": url}
    if nonce is not None:
        header["nonce"] = nonce
    if kid is not None:
        header["kid"] = kid
    else:
        header["jwk"] = key.as_dict(private=False)
    if payload is None:
        body = b""
    elif isinstance(payload, bytes):
        body = payload
    else:
        body = json.dumps(payload).encode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        signed = jws.serialize_json({"protected": header}, body, key, registry=_registry(alg))
    return dict(signed)  # type: ignore[arg-type]


def default_alg(key: AnyKey) -> str:
    if isinstance(key, jwk.RSAKey):
        return "RS256"
    if isinstance(key, jwk.OKPKey):
        return "EdDSA"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[str(key.dict_value["crv"])]
