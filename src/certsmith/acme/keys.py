"""Keys and CSRs: generation, parsing and the key policy (RFC 8555 §7.4, BR 6.1.5)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID

from certsmith.acme.problems import AcmeProblem, ProblemType

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_RSA_SIZES = (2048, 3072, 4096)
_CURVES = (ec.SECP256R1, ec.SECP384R1)


def generate_private_key(kind: str = "ec256") -> PrivateKey:
    """A new key: 'ec256', 'ec384', 'rsa2048', 'rsa3072', 'rsa4096' or 'ed25519'."""
    if kind == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind.startswith("rsa") and kind[3:].isdigit() and int(kind[3:]) in _RSA_SIZES:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("unsupported private key type")
    return key


def build_csr(
    key: PrivateKey, names: list[str], ip_addresses: list[str] | None = None
) -> x509.CertificateSigningRequest:
    """A CSR for DNS names and IP addresses; the first DNS name is the CN when it fits."""
    cn = next((n for n in names if len(n) <= 64), None)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)] if cn else [])
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def check_subscriber_key(key: object) -> None:
    """Key policy for certificate keys: RSA 2048 to 4096 with e=65537, ECDSA P-256/P-384."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in _RSA_SIZES:
            raise AcmeProblem(
                ProblemType.BAD_CSR,
                f"RSA key size {key.key_size} not allowed; use 2048, 3072 or 4096",
            )
        if key.public_numbers().e != 65537:
            raise AcmeProblem(ProblemType.BAD_CSR, "RSA public exponent must be 65537")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise AcmeProblem(
                ProblemType.BAD_CSR, f"curve {key.curve.name} not allowed; use P-256 or P-384"
            )
        return
    raise AcmeProblem(ProblemType.BAD_CSR, "CSR key must be RSA or ECDSA (P-256, P-384)")


@dataclass(frozen=True)
class CsrNames:
    """What a CSR asks for: its CN and its SANs as (type, value) identifier pairs."""

    common_name: str | None
    identifiers: frozenset[tuple[str, str]]

    @property
    def dns_names(self) -> frozenset[str]:
        return frozenset(v for t, v in self.identifiers if t == "dns")


def parse_csr(der: bytes) -> tuple[x509.CertificateSigningRequest, CsrNames]:
    """Load a DER CSR, verify its signature and key policy; badCSR on any failure."""
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as err:
        raise AcmeProblem(ProblemType.BAD_CSR, "CSR is not valid DER") from err
    try:
        public_key = csr.public_key()
    except (ValueError, TypeError) as err:
        raise AcmeProblem(ProblemType.BAD_CSR, "CSR public key cannot be read") from err
    check_subscriber_key(public_key)
    if not csr.is_signature_valid:
        raise AcmeProblem(ProblemType.BAD_CSR, "CSR signature is invalid")
    return csr, _csr_names(csr)


def _csr_names(csr: x509.CertificateSigningRequest) -> CsrNames:
    try:
        cns = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        san_ext = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        san: x509.SubjectAlternativeName | None = san_ext.value  # type: ignore[assignment]
    except x509.ExtensionNotFound:
        san = None
    except (ValueError, x509.DuplicateExtension) as err:
        raise AcmeProblem(ProblemType.BAD_CSR, f"CSR extensions cannot be read: {err}") from err
    if san is not None and any(not isinstance(n, x509.DNSName | x509.IPAddress) for n in san):
        raise AcmeProblem(ProblemType.BAD_CSR, "CSR may only ask for DNS names and IP addresses")
    identifiers: set[tuple[str, str]] = set()
    if san is not None:
        identifiers |= {("dns", n.lower()) for n in san.get_values_for_type(x509.DNSName)}
        addresses = san.get_values_for_type(x509.IPAddress)
        for address in addresses:
            if not isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address):
                raise AcmeProblem(
                    ProblemType.BAD_CSR, f"CSR IP SAN {address} is a network, not an address"
                )
        identifiers |= {("ip", str(a)) for a in addresses}
    if len(cns) > 1:
        raise AcmeProblem(ProblemType.BAD_CSR, "CSR has more than one common name")
    common_name = _canonical_cn(str(cns[0].value)) if cns else None
    return CsrNames(common_name, frozenset(identifiers))


def _canonical_cn(value: str) -> str:
    """A CN compared with SANs: lowercase, and an IP address in its canonical text."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return value.lower()
