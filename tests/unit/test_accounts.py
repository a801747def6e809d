"""Account rules (RFC 8555 §7.3): contact URLs and the account key policy."""

from __future__ import annotations

import base64
import warnings
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwk
from joserfc.errors import SecurityWarning

from certsmith.acme.jose import AnyKey, import_public_jwk
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.accounts import check_account_key, check_contacts

# --- check_contacts ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, [], id="absent"),
        pytest.param([], [], id="empty-list"),
        pytest.param(["mailto:admin@example.com"], ["mailto:admin@example.com"], id="one"),
        pytest.param(
            ["mailto:a@example.com", "mailto:b+tag@sub.example.org"],
            ["mailto:a@example.com", "mailto:b+tag@sub.example.org"],
            id="two-kept-in-order",
        ),
        pytest.param(
            ["mailto:ops@mail.xn--bcher-kva.example"],
            ["mailto:ops@mail.xn--bcher-kva.example"],
            id="idn-domain-as-a-label",
        ),
        pytest.param(["mailto:x@ca.test"], ["mailto:x@ca.test"], id="private-tld"),
        pytest.param(["mailto:a@example.com"] * 10, ["mailto:a@example.com"] * 10, id="ten"),
    ],
)
def test_accepts_mailto_contacts(raw: Any, expected: list[str]) -> None:
    assert check_contacts(raw) == expected


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param("tel:+15555550100", id="tel"),
        pytest.param("https://example.com/contact", id="https"),
        pytest.param("admin@example.com", id="bare-address"),
        pytest.param("mailto", id="scheme-without-colon"),
        pytest.param("", id="empty-string"),
        pytest.param("xmpp:admin@example.com", id="xmpp"),
    ],
)
def test_refuses_other_schemes_as_unsupported(contact: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        check_contacts(["mailto:ok@example.com", contact])
    assert excinfo.value.type is ProblemType.UNSUPPORTED_CONTACT


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param("mailto:admin@example.com?subject=hello", id="header-field"),
        pytest.param("mailto:?to=admin@example.com", id="header-field-only"),
        pytest.param("mailto:a@example.com,b@example.com", id="comma-two-addresses"),
        pytest.param("mailto:a@example.com,", id="trailing-comma"),
        pytest.param("mailto:admin.example.com", id="no-at"),
        pytest.param("mailto:", id="nothing"),
        pytest.param("mailto:@example.com", id="empty-local-part"),
        pytest.param("mailto:admin@", id="empty-domain"),
        pytest.param("mailto:admin@bad_domain.example", id="underscore-domain"),
        pytest.param("mailto:admin@localhost", id="single-label-domain"),
        pytest.param("mailto:admin@example.com.", id="trailing-dot-domain"),
        pytest.param("mailto:admin@-example.com", id="hyphen-domain"),
        pytest.param("mailto:admin@127.0.0.1", id="ip-domain"),
        pytest.param("mailto:admin@[127.0.0.1]", id="ip-literal-domain"),
        pytest.param("mailto:admin@example.com\n", id="trailing-newline"),
        pytest.param("mailto:ad min@example.com", id="space"),
        pytest.param("mailto:<admin@example.com>", id="angle-brackets"),
        pytest.param("mailto:" + "a" * 310 + "@example.com", id="too-long"),
        pytest.param("mailto:ops@mail.bücher.example", id="unicode-domain"),
        pytest.param("mailto:josé@example.com", id="unicode-local-part"),
        pytest.param("mailto:a\x00b@example.com", id="nul"),
        pytest.param('mailto:"a b"@example.com', id="quoted-local-part"),
    ],
)
def test_refuses_bad_addresses_as_invalid(contact: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        check_contacts([contact])
    assert excinfo.value.type is ProblemType.INVALID_CONTACT


@pytest.mark.parametrize(
    "contact",
    [
        pytest.param("mailto:a@b@example.com", id="at-in-the-local-part"),
        pytest.param("mailto:@a@example.com", id="local-part-starting-with-at"),
        pytest.param("mailto:a@@example.com", id="doubled-at"),
    ],
)
def test_refuses_two_at_signs(contact: str) -> None:
    # Splitting on the last '@' alone would take each of these for one plain address.
    with pytest.raises(AcmeProblem) as excinfo:
        check_contacts([contact])
    assert excinfo.value.type is ProblemType.INVALID_CONTACT


def test_refuses_more_than_ten_contacts() -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        check_contacts([f"mailto:a{i}@example.com" for i in range(11)])
    assert excinfo.value.type is ProblemType.INVALID_CONTACT


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("mailto:admin@example.com", id="string-not-list"),
        pytest.param({"mailto": "admin@example.com"}, id="object"),
        pytest.param(7, id="number"),
        pytest.param([7], id="list-of-number"),
        pytest.param(["mailto:admin@example.com", None], id="list-with-null"),
        pytest.param([["mailto:admin@example.com"]], id="nested-list"),
    ],
)
def test_refuses_a_contact_member_that_is_not_a_list_of_strings(raw: Any) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        check_contacts(raw)
    assert excinfo.value.type is ProblemType.MALFORMED


# --- check_account_key ---


def _b64url_uint(value: int) -> str:
    """RFC 7518 §6.3.1: a positive integer as unpadded base64url of its big-endian bytes."""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _rsa_jwk_member(public: rsa.RSAPublicKey) -> dict[str, Any]:
    """The `jwk` header member a client would send for `public`, written out by hand."""
    numbers = public.public_numbers()
    return {"kty": "RSA", "n": _b64url_uint(numbers.n), "e": _b64url_uint(numbers.e)}


def _rsa_public(bits: int) -> rsa.RSAPublicKey:
    """A public key of exactly `bits` bits; only its size matters to the policy."""
    modulus = (1 << (bits - 1)) | 0xF1F1F1F1F1F1 | 1
    return rsa.RSAPublicNumbers(65537, modulus).public_key()


def _rsa_public_jwk(bits: int) -> AnyKey:
    """A public RSA JWK of exactly `bits` bits, imported as the server imports one."""
    return import_public_jwk(_rsa_jwk_member(_rsa_public(bits)))


@pytest.fixture(scope="module")
def rsa1024_public() -> rsa.RSAPublicKey:
    # Too weak on purpose: the policy must refuse it.
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    return key.public_key()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: jwk.ECKey.generate_key("P-256"), id="ec-p256"),
        pytest.param(lambda: jwk.ECKey.generate_key("P-384"), id="ec-p384"),
        pytest.param(lambda: jwk.ECKey.generate_key("P-521"), id="ec-p521"),
        pytest.param(lambda: jwk.OKPKey.generate_key("Ed25519"), id="ed25519"),
        pytest.param(lambda: jwk.RSAKey.generate_key(2048), id="rsa-2048-private"),
        pytest.param(lambda: _rsa_public_jwk(2048), id="rsa-2048"),
        pytest.param(lambda: _rsa_public_jwk(3072), id="rsa-3072"),
        pytest.param(lambda: _rsa_public_jwk(4096), id="rsa-4096"),
        pytest.param(
            lambda: import_public_jwk(jwk.ECKey.generate_key("P-256").as_dict(private=False)),
            id="ec-p256-from-a-jwk-header",
        ),
    ],
)
def test_accepts_account_keys(make: Any) -> None:
    check_account_key(make())


def test_joserfc_on_its_own_warns_about_a_1024_bit_rsa_jwk(
    rsa1024_public: rsa.RSAPublicKey,
) -> None:
    """joserfc itself warns about this key; without that, the next test would prove nothing."""
    with pytest.warns(SecurityWarning, match="2048"):
        jwk.import_key(_rsa_jwk_member(rsa1024_public))


def test_a_1024_bit_rsa_jwk_imports_without_a_warning_and_is_refused(
    rsa1024_public: rsa.RSAPublicKey,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        key = import_public_jwk(_rsa_jwk_member(rsa1024_public))
    assert [str(w.message) for w in caught] == []
    assert isinstance(key, jwk.RSAKey)
    assert key.raw_value.key_size == 1024
    with pytest.raises(AcmeProblem) as excinfo:
        check_account_key(key)
    assert excinfo.value.type is ProblemType.BAD_PUBLIC_KEY
    assert "1024" in excinfo.value.detail


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _rsa_public_jwk(2047), id="rsa-2047"),
        pytest.param(lambda: _rsa_public_jwk(4097), id="rsa-4097"),
        pytest.param(lambda: _rsa_public_jwk(8192), id="rsa-8192"),
        pytest.param(lambda: jwk.ECKey.generate_key("secp256k1"), id="ec-secp256k1"),
        pytest.param(lambda: jwk.OKPKey.generate_key("X25519"), id="okp-x25519"),
        pytest.param(lambda: jwk.OKPKey.generate_key("Ed448"), id="okp-ed448"),
    ],
)
def test_refuses_account_keys_outside_the_policy(make: Any) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        check_account_key(make())
    assert excinfo.value.type is ProblemType.BAD_PUBLIC_KEY
