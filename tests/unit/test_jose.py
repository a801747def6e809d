"""certsmith.acme.jose: the JWS shape ACME demands (RFC 8555 §6.2) and RFC 7638 thumbprints.

Test JWSs are signed here with `cryptography` directly, not with the module's own signer,
so a mistake shared by signer and verifier cannot hide.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwk

from certsmith.acme.jose import (
    ALLOWED_ALGORITHMS,
    AnyKey,
    ParsedJws,
    b64url_decode,
    import_public_jwk,
    key_authorization,
    parse_jws,
    thumbprint,
    verify_jws,
)
from certsmith.acme.problems import AcmeProblem, ProblemType

URL = "https://127.0.0.1:14000/acme/new-order"
NONCE = "dGhpcy1pcy1hLW5vbmNl"
KID = "https://127.0.0.1:14000/acme/acct/abc123"
PAYLOAD = b'{"identifiers": [{"type": "dns", "value": "example.test"}]}'


def b64(data: bytes) -> str:
    """Unpadded base64url, written out here rather than taken from the module under test."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64json(value: Any) -> str:
    return b64(json.dumps(value).encode())


def _raw_signature(alg: str, key: AnyKey, signing_input: bytes) -> bytes:
    private = key.raw_value
    if alg in ("ES256", "ES384"):
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        digest = hashes.SHA256() if alg == "ES256" else hashes.SHA384()
        size = 32 if alg == "ES256" else 48
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg == "RS256":
        assert isinstance(private, rsa.RSAPrivateKey)
        return private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if alg == "EdDSA":
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        return private.sign(signing_input)
    raise AssertionError(f"no test signer for {alg}")


def sign(
    key: AnyKey,
    alg: str,
    *,
    payload: bytes = PAYLOAD,
    kid: str | None = None,
    extra: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
) -> dict[str, str]:
    """A flattened JWS signed with `key` under a protected header built from the arguments."""
    header: dict[str, Any] = {"alg": alg, "nonce": NONCE, "url": URL}
    if kid is None:
        header["jwk"] = key.as_dict(private=False)
    else:
        header["kid"] = kid
    header.update(extra or {})
    for name in drop:
        header.pop(name, None)
    protected, body = b64json(header), b64(payload)
    signature = _raw_signature(alg, key, f"{protected}.{body}".encode())
    return {"protected": protected, "payload": body, "signature": b64(signature)}


KEY_MAKERS: dict[str, Callable[[], AnyKey]] = {
    "ES256": lambda: jwk.ECKey.generate_key("P-256"),
    "ES384": lambda: jwk.ECKey.generate_key("P-384"),
    "RS256": lambda: jwk.RSAKey.generate_key(2048),
    "EdDSA": lambda: jwk.OKPKey.generate_key("Ed25519"),
}


@pytest.fixture(scope="module")
def keys() -> dict[str, AnyKey]:
    """One private key per algorithm, plus a second P-256 key for "signed by someone else"."""
    made = {alg: make() for alg, make in KEY_MAKERS.items()}
    made["ES256-other"] = jwk.ECKey.generate_key("P-256")
    return made


def problem_of(excinfo: pytest.ExceptionInfo[AcmeProblem]) -> AcmeProblem:
    return excinfo.value


ALGS = [pytest.param(alg, id=alg) for alg in KEY_MAKERS]


# --- good JWSs ---


@pytest.mark.parametrize("alg", ALGS)
def test_good_jws_with_jwk_parses_and_verifies(keys: dict[str, AnyKey], alg: str) -> None:
    signed = sign(keys[alg], alg)
    parsed = parse_jws(json.dumps(signed).encode())
    assert parsed.alg == alg
    assert parsed.url == URL
    assert parsed.nonce == NONCE
    assert parsed.kid is None
    assert parsed.payload == PAYLOAD
    assert parsed.json_payload() == json.loads(PAYLOAD)
    assert not parsed.is_post_as_get
    key = import_public_jwk(parsed.jwk)
    assert key.thumbprint() == keys[alg].thumbprint()
    verify_jws(parsed, key)


@pytest.mark.parametrize("alg", ALGS)
def test_good_jws_with_kid_verifies_with_the_account_key(keys: dict[str, AnyKey], alg: str) -> None:
    parsed = parse_jws(sign(keys[alg], alg, kid=KID))
    assert parsed.kid == KID
    assert parsed.jwk is None
    verify_jws(parsed, import_public_jwk(keys[alg].as_dict(private=False)))


def test_post_as_get_has_an_empty_payload(keys: dict[str, AnyKey]) -> None:
    parsed = parse_jws(sign(keys["ES256"], "ES256", payload=b"", kid=KID))
    assert parsed.is_post_as_get
    assert parsed.payload == b""
    verify_jws(parsed, import_public_jwk(keys["ES256"].as_dict(private=False)))


def test_nonce_may_be_left_out_when_not_required(keys: dict[str, AnyKey]) -> None:
    parsed = parse_jws(sign(keys["ES256"], "ES256", drop=("nonce",)), require_nonce=False)
    assert "nonce" not in parsed.protected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"[1, 2]", id="array"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b'"text"', id="string"),
    ],
)
def test_json_payload_must_be_an_object(keys: dict[str, AnyKey], payload: bytes) -> None:
    parsed = parse_jws(sign(keys["ES256"], "ES256", payload=payload))
    assert parsed.payload == payload
    with pytest.raises(AcmeProblem) as excinfo:
        parsed.json_payload()
    assert problem_of(excinfo).type is ProblemType.MALFORMED


# --- refused by parse_jws: the outer JSON ---


def _valid_members() -> dict[str, str]:
    header = {"alg": "ES256", "nonce": NONCE, "url": URL, "kid": KID}
    return {"protected": b64json(header), "payload": b64(b"{}"), "signature": b64(b"\x01" * 64)}


def test_the_reference_members_are_accepted() -> None:
    """The base the refusal cases below are built from is itself well-formed."""
    assert parse_jws(_valid_members()).kid == KID


_DROP = object()


def _with(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = dict(_valid_members())
    for name, value in changes.items():
        if value is _DROP:
            del doc[name]
        else:
            doc[name] = value
    return doc


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json at all", id="not-json"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[]", id="json-array"),
        pytest.param(b'"a string"', id="json-string"),
        pytest.param(b"null", id="json-null"),
        pytest.param(
            json.dumps(
                {"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}]}
            ).encode(),
            id="general-serialization",
        ),
        pytest.param(
            json.dumps(_with(signatures=[{"protected": "e30", "signature": "AA"}])).encode(),
            id="flattened-plus-signatures",
        ),
        pytest.param(json.dumps(_with(header={"kid": KID})).encode(), id="unprotected-header"),
        pytest.param(json.dumps(_with(extra="x")).encode(), id="unknown-member"),
        pytest.param(json.dumps(_with(protected=_DROP)).encode(), id="missing-protected"),
        pytest.param(json.dumps(_with(payload=_DROP)).encode(), id="missing-payload"),
        pytest.param(json.dumps(_with(signature=_DROP)).encode(), id="missing-signature"),
        pytest.param(json.dumps(_with(protected=123)).encode(), id="protected-number"),
        pytest.param(json.dumps(_with(payload=None)).encode(), id="payload-null"),
        pytest.param(json.dumps(_with(signature=["AA"])).encode(), id="signature-list"),
        pytest.param(json.dumps(_with(payload={})).encode(), id="payload-object"),
    ],
)
def test_refuses_a_body_that_is_not_a_flattened_jws(body: bytes) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(body)
    assert problem_of(excinfo).type is ProblemType.MALFORMED


def test_refuses_a_body_over_the_size_limit() -> None:
    doc = _with(payload=b64(b"x" * 300_000))
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(json.dumps(doc).encode())
    assert problem_of(excinfo).type is ProblemType.MALFORMED


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda v: v + "=", id="padding"),
        pytest.param(lambda v: v + "==", id="double-padding"),
        pytest.param(lambda v: v[:4] + "!" + v[5:], id="bang"),
        pytest.param(lambda v: v[:4] + "*" + v[5:], id="star"),
        pytest.param(lambda v: v[:4] + " " + v[5:], id="space"),
        pytest.param(lambda v: v + "\n", id="newline"),
        pytest.param(lambda v: v[:4] + "é" + v[5:], id="non-ascii"),
        pytest.param(lambda v: v + "A" * (5 - len(v) % 4), id="impossible-length"),
    ],
)
def test_refuses_bad_base64url(member: str, mangle: Callable[[str], str]) -> None:
    doc = _valid_members()
    doc[member] = mangle(doc[member])
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(doc)
    assert problem_of(excinfo).type is ProblemType.MALFORMED


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("ab+c", id="plus"),
        pytest.param("ab/c", id="slash"),
        pytest.param("-_+/", id="both-alphabets-mixed"),
    ],
)
def test_b64url_decode_refuses_the_standard_alphabet_extras(value: str) -> None:
    # RFC 4648 §5: base64url swaps '+' and '/' for '-' and '_', so '+' and '/' are refused.
    with pytest.raises(AcmeProblem) as excinfo:
        b64url_decode(value)
    assert problem_of(excinfo).type is ProblemType.MALFORMED


def test_parse_jws_refuses_a_signature_in_the_standard_alphabet() -> None:
    doc = _valid_members()
    doc["signature"] = b64(b"\xfb\xff" * 32).replace("-", "+").replace("_", "/")
    assert "+" in doc["signature"] and "/" in doc["signature"]
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(doc)
    assert problem_of(excinfo).type is ProblemType.MALFORMED


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        pytest.param("", b"", id="empty"),
        pytest.param("YQ", b"a", id="two-chars"),
        pytest.param("YWI", b"ab", id="three-chars"),
        pytest.param("YWJj", b"abc", id="four-chars"),
        pytest.param("-_8", b"\xfb\xff", id="url-alphabet"),
    ],
)
def test_b64url_decode_accepts_unpadded_base64url(encoded: str, decoded: bytes) -> None:
    assert b64url_decode(encoded) == decoded


# --- refused by parse_jws: the protected header ---


@pytest.mark.parametrize(
    "protected",
    [
        pytest.param(b64(b"[1, 2]"), id="array"),
        pytest.param(b64(b'"alg"'), id="string"),
        pytest.param(b64(b"null"), id="null"),
        pytest.param(b64(b"{not json"), id="not-json"),
        pytest.param(b64(b"\xff\xfe"), id="not-utf8"),
        pytest.param("", id="empty"),
    ],
)
def test_refuses_a_protected_header_that_is_not_an_object(protected: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(_with(protected=protected))
    assert problem_of(excinfo).type is ProblemType.MALFORMED


def _header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "ES256", "nonce": NONCE, "url": URL, "kid": KID}
    for name, value in changes.items():
        if value is _DROP:
            del header[name]
        else:
            header[name] = value
    return header


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(_header(alg="none"), id="none"),
        pytest.param(_header(alg="HS256"), id="HS256"),
        pytest.param(_header(alg="es256"), id="lowercase-es256"),
        pytest.param(_header(alg=""), id="empty"),
        pytest.param(_header(alg=_DROP), id="missing"),
        pytest.param(_header(alg=None), id="null"),
        pytest.param(_header(alg=["ES256"]), id="list"),
    ],
)
def test_refuses_an_unsupported_algorithm(header: dict[str, Any]) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(_with(protected=b64json(header)))
    problem = problem_of(excinfo)
    assert problem.type is ProblemType.BAD_SIGNATURE_ALGORITHM
    algorithms = problem.extra["algorithms"]
    assert isinstance(algorithms, list)
    assert {"ES256", "EdDSA", "RS256"} <= set(algorithms)
    assert not {"none", "HS256"} & set(algorithms)
    assert problem.to_dict()["algorithms"] == algorithms


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(
            _header(jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
            ProblemType.MALFORMED,
            id="both-jwk-and-kid",
        ),
        pytest.param(_header(kid=_DROP), ProblemType.MALFORMED, id="neither-jwk-nor-kid"),
        pytest.param(_header(kid=42), ProblemType.MALFORMED, id="kid-not-a-string"),
        pytest.param(_header(url=_DROP), ProblemType.MALFORMED, id="missing-url"),
        pytest.param(_header(url=None), ProblemType.MALFORMED, id="url-null"),
        pytest.param(_header(url=[URL]), ProblemType.MALFORMED, id="url-list"),
        pytest.param(_header(crit=["b64"]), ProblemType.MALFORMED, id="crit"),
        pytest.param(_header(b64=False), ProblemType.MALFORMED, id="b64"),
        pytest.param(_header(nonce=_DROP), ProblemType.BAD_NONCE, id="missing-nonce"),
        pytest.param(_header(nonce=12345), ProblemType.BAD_NONCE, id="nonce-not-a-string"),
        pytest.param(_header(nonce=None), ProblemType.BAD_NONCE, id="nonce-null"),
    ],
)
def test_refuses_a_bad_protected_header(header: dict[str, Any], expected: ProblemType) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_jws(_with(protected=b64json(header)))
    assert problem_of(excinfo).type is expected


# --- refused by verify_jws ---


def _tamper_payload(doc: dict[str, str]) -> dict[str, str]:
    return dict(doc, payload=b64(PAYLOAD.replace(b"example.test", b"example.tesu")))


def _tamper_signature(doc: dict[str, str]) -> dict[str, str]:
    raw = bytearray(base64.urlsafe_b64decode(doc["signature"] + "=="))
    raw[len(raw) // 2] ^= 0x01
    return dict(doc, signature=b64(bytes(raw)))


def _truncate_signature(doc: dict[str, str]) -> dict[str, str]:
    raw = base64.urlsafe_b64decode(doc["signature"] + "==")
    return dict(doc, signature=b64(raw[:-1]))


def _tamper_header(doc: dict[str, str]) -> dict[str, str]:
    header = json.loads(base64.urlsafe_b64decode(doc["protected"] + "=="))
    header["url"] = URL + "x"
    return dict(doc, protected=b64json(header))


@pytest.mark.parametrize("alg", ALGS)
@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(_tamper_payload, id="payload"),
        pytest.param(_tamper_signature, id="signature"),
        pytest.param(_truncate_signature, id="short-signature"),
        pytest.param(_tamper_header, id="protected-header"),
    ],
)
def test_refuses_a_tampered_jws(
    keys: dict[str, AnyKey], alg: str, tamper: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    key = import_public_jwk(keys[alg].as_dict(private=False))
    signed = sign(keys[alg], alg, kid=KID)
    verify_jws(parse_jws(signed), key)  # the untampered original is good
    parsed = parse_jws(tamper(signed))
    with pytest.raises(AcmeProblem) as excinfo:
        verify_jws(parsed, key)
    assert problem_of(excinfo).type is ProblemType.MALFORMED


def test_refuses_a_jws_signed_by_another_key_of_the_same_type(keys: dict[str, AnyKey]) -> None:
    parsed = parse_jws(sign(keys["ES256-other"], "ES256", kid=KID))
    with pytest.raises(AcmeProblem) as excinfo:
        verify_jws(parsed, import_public_jwk(keys["ES256"].as_dict(private=False)))
    assert problem_of(excinfo).type is ProblemType.MALFORMED


@pytest.mark.parametrize(
    ("key_name", "alg"),
    [
        pytest.param("ES256", "ES384", id="ES384-header-P-256-key"),
        pytest.param("ES384", "ES256", id="ES256-header-P-384-key"),
        pytest.param("ES256", "ES512", id="ES512-header-P-256-key"),
        pytest.param("ES256", "RS256", id="RS256-header-EC-key"),
        pytest.param("ES256", "EdDSA", id="EdDSA-header-EC-key"),
        pytest.param("RS256", "ES256", id="ES256-header-RSA-key"),
        pytest.param("RS256", "EdDSA", id="EdDSA-header-RSA-key"),
        pytest.param("EdDSA", "ES256", id="ES256-header-Ed25519-key"),
        pytest.param("EdDSA", "RS256", id="RS256-header-Ed25519-key"),
    ],
)
def test_refuses_an_algorithm_that_does_not_fit_the_key(
    keys: dict[str, AnyKey], key_name: str, alg: str
) -> None:
    header: dict[str, Any] = {"alg": alg, "nonce": NONCE, "url": URL}
    header["jwk"] = keys[key_name].as_dict(private=False)
    doc = {"protected": b64json(header), "payload": b64(PAYLOAD), "signature": b64(b"\0" * 64)}
    parsed = parse_jws(doc)
    with pytest.raises(AcmeProblem) as excinfo:
        verify_jws(parsed, import_public_jwk(parsed.jwk))
    problem = problem_of(excinfo)
    assert problem.type is ProblemType.BAD_SIGNATURE_ALGORITHM
    assert list(problem.extra["algorithms"]) == list(ALLOWED_ALGORITHMS)


# --- the jwk header: import_public_jwk ---


@pytest.mark.parametrize("alg", ALGS)
def test_refuses_a_private_key_in_jwk(keys: dict[str, AnyKey], alg: str) -> None:
    private = keys[alg].as_dict(private=True)
    assert "d" in private
    parsed = parse_jws(sign(keys[alg], alg, extra={"jwk": private}))
    assert parsed.jwk == private
    with pytest.raises(AcmeProblem) as excinfo:
        import_public_jwk(parsed.jwk)
    assert problem_of(excinfo).type is ProblemType.BAD_PUBLIC_KEY


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(dict(jwk.generate_key("oct", 256).as_dict()), id="oct"),
        pytest.param({"kty": "oct", "k": "c2VjcmV0"}, id="oct-handwritten"),
        pytest.param({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, id="ec-not-on-curve"),
        pytest.param({"kty": "RSA", "e": "AQAB"}, id="rsa-without-n"),
        pytest.param({"crv": "Ed25519", "x": "AA"}, id="no-kty"),
        pytest.param({"kty": "ec", "crv": "P-256"}, id="lowercase-kty"),
    ],
)
def test_refuses_an_unusable_jwk(value: dict[str, Any]) -> None:
    header = {"alg": "ES256", "nonce": NONCE, "url": URL, "jwk": value}
    parsed = parse_jws(_with(protected=b64json(header)))
    assert parsed.jwk == value
    with pytest.raises(AcmeProblem) as excinfo:
        import_public_jwk(parsed.jwk)
    assert problem_of(excinfo).type is ProblemType.BAD_PUBLIC_KEY


@pytest.mark.parametrize(
    "value",
    [pytest.param("a string", id="string"), pytest.param(["EC"], id="list")],
)
def test_refuses_a_jwk_that_is_not_an_object(value: Any) -> None:
    header = {"alg": "ES256", "nonce": NONCE, "url": URL, "jwk": value}
    parsed: ParsedJws = parse_jws(_with(protected=b64json(header)))
    assert parsed.jwk is None
    with pytest.raises(AcmeProblem) as excinfo:
        import_public_jwk(parsed.protected["jwk"])
    assert problem_of(excinfo).type is ProblemType.MALFORMED


# --- thumbprints (RFC 7638) and key authorizations (RFC 8555 §8.1) ---

# RFC 7638 §3.1: the RSA key of RFC 7517 Appendix A.1, with its members as printed there.
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF"
        "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
# RFC 8037 Appendix A.3: the Ed25519 public key of A.2 and its RFC 7638 thumbprint.
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(RFC7638_JWK, RFC7638_THUMBPRINT, id="rfc7638-rsa"),
        pytest.param(
            {k: RFC7638_JWK[k] for k in ("e", "n", "kty")},
            RFC7638_THUMBPRINT,
            id="rfc7638-rsa-required-members-only",
        ),
        pytest.param(RFC8037_JWK, RFC8037_THUMBPRINT, id="rfc8037-ed25519"),
    ],
)
def test_thumbprint_matches_the_rfc_vectors(value: dict[str, str], expected: str) -> None:
    assert thumbprint(import_public_jwk(value)) == expected


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", id="rfc8555-example-token"),
        pytest.param("x", id="short-token"),
    ],
)
def test_key_authorization_is_token_dot_thumbprint(token: str) -> None:
    key = import_public_jwk(RFC7638_JWK)
    assert key_authorization(token, key) == token + "." + RFC7638_THUMBPRINT


def test_thumbprints_of_different_keys_differ(keys: dict[str, AnyKey]) -> None:
    prints = {thumbprint(import_public_jwk(k.as_dict(private=False))) for k in keys.values()}
    assert len(prints) == len(keys)
