"""CSRs at finalize (RFC 8555 §7.4): parse_csr, the subscriber key policy, the name match."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID

from certsmith.acme.keys import CsrNames, check_subscriber_key, parse_csr
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.finalization import check_csr_names

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@pytest.fixture(scope="module")
def private_keys() -> dict[str, SigningKey]:
    """Generated once per module; RSA generation is the slow part."""
    return {
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "rsa2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    # Too weak on purpose: the policy must refuse it.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


def make_csr(
    key: SigningKey,
    *,
    common_names: Sequence[str] = (),
    sans: Sequence[x509.GeneralName] | None = None,
) -> bytes:
    """A DER CSR built with cryptography's own builder; `sans=None` leaves the SAN out."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


def dns_sans(*names: str) -> list[x509.GeneralName]:
    return [x509.DNSName(name) for name in names]


def ip_san(address: str) -> x509.GeneralName:
    return x509.IPAddress(ipaddress.ip_address(address))


def bad_csr(der: bytes) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_csr(der)
    assert excinfo.value.type is ProblemType.BAD_CSR
    return excinfo.value


# --- good CSRs ---


@pytest.mark.parametrize(
    "key_name",
    [
        pytest.param("p256", id="ec-p256"),
        pytest.param("p384", id="ec-p384"),
        pytest.param("rsa2048", id="rsa-2048"),
    ],
)
def test_parses_a_good_csr(private_keys: dict[str, SigningKey], key_name: str) -> None:
    key = private_keys[key_name]
    der = make_csr(
        key,
        common_names=["WWW.Example.COM"],
        sans=dns_sans("www.example.com", "Example.com", "api.example.com"),
    )
    csr, names = parse_csr(der)
    assert names == CsrNames(
        common_name="www.example.com",
        identifiers=frozenset(
            {("dns", "www.example.com"), ("dns", "example.com"), ("dns", "api.example.com")}
        ),
    )
    assert names.dns_names == {"www.example.com", "example.com", "api.example.com"}
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert csr.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def test_parses_a_csr_without_common_name(private_keys: dict[str, SigningKey]) -> None:
    _, names = parse_csr(make_csr(private_keys["p256"], sans=dns_sans("example.test")))
    assert names == CsrNames(None, frozenset({("dns", "example.test")}))


def test_parses_a_csr_without_san(private_keys: dict[str, SigningKey]) -> None:
    _, names = parse_csr(make_csr(private_keys["p256"], common_names=["Example.test"]))
    assert names == CsrNames("example.test", frozenset())
    assert names.dns_names == frozenset()


# --- IP address SANs (RFC 8738 §3, §4) ---


@pytest.mark.parametrize(
    ("sans", "identifiers"),
    [
        pytest.param(
            [x509.DNSName("example.com"), ip_san("127.0.0.1")],
            {("dns", "example.com"), ("ip", "127.0.0.1")},
            id="ipv4-san-beside-a-dns-name",
        ),
        pytest.param([ip_san("::1")], {("ip", "::1")}, id="ipv6-san-only"),
        pytest.param(
            [ip_san("2001:DB8:0:0:0:0:0:1")], {("ip", "2001:db8::1")}, id="ipv6-in-rfc5952-form"
        ),
        pytest.param(
            [ip_san("192.0.2.1"), ip_san("2001:db8::1")],
            {("ip", "192.0.2.1"), ("ip", "2001:db8::1")},
            id="ipv4-and-ipv6",
        ),
        pytest.param(
            [x509.DNSName("192.0.2.1"), ip_san("192.0.2.1")],
            {("dns", "192.0.2.1"), ("ip", "192.0.2.1")},
            id="same-text-as-dns-and-ip-kept-apart",
        ),
    ],
)
def test_parses_ip_address_sans(
    private_keys: dict[str, SigningKey],
    sans: list[x509.GeneralName],
    identifiers: set[tuple[str, str]],
) -> None:
    _, names = parse_csr(make_csr(private_keys["p256"], sans=sans))
    assert names == CsrNames(None, frozenset(identifiers))
    assert names.dns_names == {value for kind, value in identifiers if kind == "dns"}


# --- refused keys ---


def test_refuses_rsa_1024(rsa1024: rsa.RSAPrivateKey) -> None:
    problem = bad_csr(make_csr(rsa1024, sans=dns_sans("example.com")))
    assert "1024" in problem.detail


@pytest.mark.parametrize(
    "key_name",
    [pytest.param("p521", id="ec-p521"), pytest.param("ed25519", id="ed25519")],
)
def test_refuses_a_key_outside_the_policy(
    private_keys: dict[str, SigningKey], key_name: str
) -> None:
    bad_csr(make_csr(private_keys[key_name], sans=dns_sans("example.com")))


def _rsa_public(bits: int, exponent: int = 65537) -> rsa.RSAPublicKey:
    """A public key of exactly `bits` bits; only its size and exponent matter to the policy."""
    modulus = (1 << (bits - 1)) | 0xF1F1F1F1F1F1 | 1
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(_rsa_public(2048), id="rsa-2048"),
        pytest.param(_rsa_public(3072), id="rsa-3072"),
        pytest.param(_rsa_public(4096), id="rsa-4096"),
        pytest.param(ec.generate_private_key(ec.SECP256R1()).public_key(), id="ec-p256"),
        pytest.param(ec.generate_private_key(ec.SECP384R1()).public_key(), id="ec-p384"),
    ],
)
def test_subscriber_key_policy_accepts(key: object) -> None:
    check_subscriber_key(key)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(_rsa_public(1024), id="rsa-1024"),
        pytest.param(_rsa_public(2047), id="rsa-2047"),
        pytest.param(_rsa_public(2049), id="rsa-2049"),
        pytest.param(_rsa_public(8192), id="rsa-8192"),
        pytest.param(_rsa_public(2048, exponent=3), id="rsa-exponent-3"),
        pytest.param(_rsa_public(2048, exponent=65539), id="rsa-exponent-65539"),
        pytest.param(ec.generate_private_key(ec.SECP521R1()).public_key(), id="ec-p521"),
        pytest.param(ec.generate_private_key(ec.SECP256K1()).public_key(), id="ec-secp256k1"),
        pytest.param(ed25519.Ed25519PrivateKey.generate().public_key(), id="ed25519"),
        pytest.param(ed448.Ed448PrivateKey.generate().public_key(), id="ed448"),
        pytest.param(x25519.X25519PrivateKey.generate().public_key(), id="x25519"),
        pytest.param(b"not a key", id="bytes"),
        pytest.param(None, id="none"),
    ],
)
def test_subscriber_key_policy_refuses(key: object) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        check_subscriber_key(key)
    assert excinfo.value.type is ProblemType.BAD_CSR


# --- refused encodings and signatures ---


@pytest.mark.parametrize(
    "key_name",
    [pytest.param("p256", id="ec-p256"), pytest.param("rsa2048", id="rsa-2048")],
)
def test_refuses_a_broken_signature(private_keys: dict[str, SigningKey], key_name: str) -> None:
    der = make_csr(private_keys[key_name], sans=dns_sans("example.com"))
    signature = x509.load_der_x509_csr(der).signature
    start = der.rfind(signature)
    assert start > 0 and start + len(signature) == len(der), "signature ends the DER"
    broken = bytearray(der)
    broken[start + len(signature) - 1] ^= 0x01  # last byte: inside the value, not a header
    still_loads = x509.load_der_x509_csr(bytes(broken))
    assert not still_loads.is_signature_valid
    problem = bad_csr(bytes(broken))
    assert "signature" in problem.detail


def test_refuses_a_csr_whose_subject_was_changed_after_signing(
    private_keys: dict[str, SigningKey],
) -> None:
    der = make_csr(private_keys["p256"], common_names=["aaaa.test"], sans=dns_sans("aaaa.test"))
    assert der.count(b"aaaa.test") == 2
    bad_csr(der.replace(b"aaaa.test", b"bbbb.test"))


def _self_signed_certificate_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(
    "der",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a csr", id="text"),
        pytest.param(b"\x30\x03\x02\x01\x00", id="der-of-something-else"),
        pytest.param(b"\x30\x82\xff\xff", id="length-past-the-end"),
        pytest.param(_self_signed_certificate_der(), id="a-certificate"),
    ],
)
def test_refuses_garbage_der(der: bytes) -> None:
    bad_csr(der)


def test_refuses_truncated_and_pem_csrs(private_keys: dict[str, SigningKey]) -> None:
    der = make_csr(private_keys["p256"], sans=dns_sans("example.com"))
    parse_csr(der)
    bad_csr(der[:-8])
    pem = x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
    bad_csr(pem)


# --- refused names ---


@pytest.mark.parametrize(
    "sans",
    [
        pytest.param(
            [x509.DNSName("example.com"), x509.RFC822Name("admin@example.com")], id="email-san"
        ),
        pytest.param(
            [x509.DNSName("example.com"), x509.UniformResourceIdentifier("https://example.com/")],
            id="uri-san",
        ),
        pytest.param(
            [ip_san("192.0.2.1"), x509.UniformResourceIdentifier("https://192.0.2.1/")],
            id="uri-san-beside-an-ip",
        ),
        pytest.param(
            [x509.DNSName("example.com"), x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4"))],
            id="registered-id-san",
        ),
    ],
)
def test_refuses_a_san_that_is_neither_a_dns_name_nor_an_ip_address(
    private_keys: dict[str, SigningKey], sans: list[x509.GeneralName]
) -> None:
    problem = bad_csr(make_csr(private_keys["p256"], sans=sans))
    assert "DNS names and IP addresses" in problem.detail


def test_refuses_two_common_names(private_keys: dict[str, SigningKey]) -> None:
    der = make_csr(
        private_keys["p256"],
        common_names=["a.example.com", "b.example.com"],
        sans=dns_sans("a.example.com", "b.example.com"),
    )
    problem = bad_csr(der)
    assert "common name" in problem.detail


# --- check_csr_names: the CSR must ask for the order's names ---

ORDER = {("dns", "example.com"), ("dns", "www.example.com")}


@pytest.mark.parametrize(
    ("common_names", "sans"),
    [
        pytest.param(["example.com"], ["example.com", "www.example.com"], id="cn-and-sans"),
        pytest.param([], ["www.example.com", "example.com"], id="sans-only"),
        pytest.param(["WWW.EXAMPLE.COM"], ["Example.com", "WWW.example.com"], id="mixed-case"),
        pytest.param([], ["example.com", "www.example.com", "EXAMPLE.com"], id="duplicate-san"),
    ],
)
def test_accepts_a_csr_with_exactly_the_order_names(
    private_keys: dict[str, SigningKey], common_names: list[str], sans: list[str]
) -> None:
    _, names = parse_csr(
        make_csr(private_keys["p256"], common_names=common_names, sans=dns_sans(*sans))
    )
    check_csr_names(names.identifiers, names.common_name, set(ORDER))


@pytest.mark.parametrize(
    ("common_names", "sans", "in_detail"),
    [
        pytest.param([], ["example.com"], "www.example.com", id="missing-name"),
        pytest.param(
            [],
            ["example.com", "www.example.com", "mail.example.com"],
            "mail.example.com",
            id="extra-name",
        ),
        pytest.param(
            [], ["example.com", "mail.example.com"], "mail.example.com", id="one-name-swapped"
        ),
        pytest.param(
            ["mail.example.com"],
            ["example.com", "www.example.com"],
            "common name",
            id="cn-not-among-sans",
        ),
        pytest.param(["example.com"], None, "common name", id="cn-only-no-san"),
        pytest.param([], None, "example.com", id="no-names-at-all"),
        pytest.param([], ["*.example.com", "example.com"], "*.example.com", id="wildcard-for-www"),
    ],
)
def test_refuses_a_csr_whose_names_differ_from_the_order(
    private_keys: dict[str, SigningKey],
    common_names: list[str],
    sans: list[str] | None,
    in_detail: str,
) -> None:
    der = make_csr(
        private_keys["p256"],
        common_names=common_names,
        sans=None if sans is None else dns_sans(*sans),
    )
    _, names = parse_csr(der)
    with pytest.raises(AcmeProblem) as excinfo:
        check_csr_names(names.identifiers, names.common_name, set(ORDER))
    assert excinfo.value.type is ProblemType.BAD_CSR
    assert in_detail in excinfo.value.detail


# An order for one DNS name and two IP addresses (RFC 8738).
MIXED_ORDER = {("dns", "x.test"), ("ip", "192.0.2.1"), ("ip", "2001:db8::1")}


@pytest.mark.parametrize(
    ("common_names", "sans"),
    [
        pytest.param(
            ["x.test"],
            [x509.DNSName("x.test"), ip_san("192.0.2.1"), ip_san("2001:db8::1")],
            id="cn-is-the-dns-name",
        ),
        pytest.param(
            [],
            [ip_san("2001:db8::1"), ip_san("192.0.2.1"), x509.DNSName("X.test")],
            id="sans-only-any-order",
        ),
        pytest.param(
            ["192.0.2.1"],
            [x509.DNSName("x.test"), ip_san("192.0.2.1"), ip_san("2001:db8::1")],
            id="cn-is-the-ipv4-address",
        ),
        pytest.param(
            [],
            [x509.DNSName("x.test"), ip_san("192.0.2.1"), ip_san("2001:DB8:0:0:0:0:0:1")],
            id="ipv6-written-differently",
        ),
    ],
)
def test_accepts_a_csr_with_exactly_the_order_dns_names_and_addresses(
    private_keys: dict[str, SigningKey], common_names: list[str], sans: list[x509.GeneralName]
) -> None:
    _, names = parse_csr(make_csr(private_keys["p256"], common_names=common_names, sans=sans))
    check_csr_names(names.identifiers, names.common_name, set(MIXED_ORDER))


@pytest.mark.parametrize(
    ("common_names", "sans", "in_detail"),
    [
        pytest.param([], [x509.DNSName("x.test")], "192.0.2.1", id="dns-name-only"),
        pytest.param(
            [],
            [x509.DNSName("x.test"), ip_san("192.0.2.1")],
            "2001:db8::1",
            id="one-address-missing",
        ),
        pytest.param(
            [],
            [ip_san("192.0.2.1"), ip_san("2001:db8::1")],
            "x.test",
            id="addresses-only",
        ),
        pytest.param(
            [],
            [x509.DNSName("x.test"), x509.DNSName("192.0.2.1"), ip_san("2001:db8::1")],
            "192.0.2.1",
            id="ipv4-written-as-a-dns-name",
        ),
        pytest.param(
            [],
            [x509.DNSName("x.test"), ip_san("192.0.2.1"), x509.DNSName("2001:db8::1")],
            "2001:db8::1",
            id="ipv6-written-as-a-dns-name",
        ),
        pytest.param(
            [],
            [x509.DNSName("x.test"), ip_san("192.0.2.2"), ip_san("2001:db8::1")],
            "192.0.2.2",
            id="another-address",
        ),
        pytest.param(
            [],
            [x509.DNSName("x.test"), ip_san("192.0.2.1"), ip_san("2001:db8::1"), ip_san("::1")],
            "::1",
            id="extra-address",
        ),
        pytest.param(
            ["192.0.2.9"],
            [x509.DNSName("x.test"), ip_san("192.0.2.1"), ip_san("2001:db8::1")],
            "common name",
            id="cn-an-address-not-among-sans",
        ),
    ],
)
def test_refuses_a_csr_whose_dns_names_or_addresses_differ_from_the_order(
    private_keys: dict[str, SigningKey],
    common_names: list[str],
    sans: list[x509.GeneralName],
    in_detail: str,
) -> None:
    _, names = parse_csr(make_csr(private_keys["p256"], common_names=common_names, sans=sans))
    with pytest.raises(AcmeProblem) as excinfo:
        check_csr_names(names.identifiers, names.common_name, set(MIXED_ORDER))
    assert excinfo.value.type is ProblemType.BAD_CSR
    assert in_detail in excinfo.value.detail


def test_parse_csr_refuses_a_network_as_ip_san(private_keys: dict[str, SigningKey]) -> None:
    sans = [x509.DNSName("x.test"), x509.IPAddress(ipaddress.ip_network("192.0.2.0/24"))]
    with pytest.raises(AcmeProblem) as excinfo:
        parse_csr(make_csr(private_keys["p256"], common_names=[], sans=sans))
    assert excinfo.value.type is ProblemType.BAD_CSR
    assert "192.0.2.0/24" in excinfo.value.detail
