"""Root and intermediate CA on disk, and signing of subscriber certificates."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certsmith.acme.keys import PrivateKey, generate_private_key, load_private_key, private_key_pem
from certsmith.server.clock import Clock

_ROOT_LIFETIME = timedelta(days=3650)
_INTERMEDIATE_LIFETIME = timedelta(days=1825)
_LISTENER_LIFETIME = timedelta(days=365)
# Backdating guards against relying parties whose clocks run a little slow.
_BACKDATE = timedelta(minutes=1)


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file atomically with mode 0600 from the first byte on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sign_hash(key: PrivateKey) -> hashes.HashAlgorithm | None:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return hashes.SHA256()
    return None


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: x509.Certificate
    chain_pem: str

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


class CertificateAuthority:
    """A root kept for trust anchors and an intermediate that signs subscriber certificates."""

    def __init__(
        self,
        root: x509.Certificate,
        intermediate: x509.Certificate,
        intermediate_key: PrivateKey,
        clock: Clock,
        alternates: list[x509.Certificate] | None = None,
    ) -> None:
        self.root = root
        self.intermediate = intermediate
        # Other certificates for the intermediate's key (cross-signs by other roots), each
        # the top of an alternate chain (RFC 8555 §7.4.2).
        self._alternate_pems = [_pem(c).decode() for c in alternates or []]
        self._key = intermediate_key
        self._clock = clock
        self._intermediate_pem = _pem(intermediate).decode()
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            intermediate_key.public_key()
        )

    @classmethod
    def load_or_create(cls, data_dir: Path, clock: Clock) -> CertificateAuthority:
        """Load the CA from `data_dir`, creating root and intermediate on first start."""
        ca_dir = data_dir / "ca"
        paths = [data_dir / "root.pem", ca_dir / "intermediate.pem", ca_dir / "intermediate.key"]
        if not all(p.exists() for p in paths):
            _create_hierarchy(data_dir, clock)
        root = x509.load_pem_x509_certificate((data_dir / "root.pem").read_bytes())
        inter = x509.load_pem_x509_certificate((ca_dir / "intermediate.pem").read_bytes())
        key = load_private_key((ca_dir / "intermediate.key").read_bytes())
        cross_path = ca_dir / "intermediate-cross.pem"
        if not cross_path.exists() or not (data_dir / ALTERNATE_ROOT).exists():
            _create_alternate(data_dir, inter, key, clock)
        cross = x509.load_pem_x509_certificate(cross_path.read_bytes())
        return cls(root, inter, key, clock, alternates=[cross])

    def alternate_chains(self, chain_pem: str) -> list[str]:
        """The same leaf as `chain_pem` above each alternate intermediate."""
        end = "-----END CERTIFICATE-----\n"
        leaf = chain_pem[: chain_pem.index(end) + len(end)]
        return [leaf + top for top in self._alternate_pems]

    def issue(
        self,
        public_key: object,
        dns_names: list[str],
        lifetime: timedelta,
        ip_addresses: list[str] | None = None,
    ) -> IssuedCertificate:
        """Sign a serverAuth leaf for the names (RFC 5280; CA/B BR 7.1 profile)."""
        now = self._clock.now()
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
        cn = next((n for n in dns_names if len(n) <= 64), None)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
        key_usage_encipher = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now - _BACKDATE + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(key_encipherment=key_usage_encipher), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName(names), critical=not cn)
            .add_extension(self._aki, critical=False)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key),  # type: ignore[arg-type]
                critical=False,
            )
        )
        cert = builder.sign(self._key, _sign_hash(self._key))  # type: ignore[arg-type]
        return IssuedCertificate(cert, _pem(cert).decode() + self._intermediate_pem)


def _key_usage(*, key_encipherment: bool = False, ca: bool = False) -> x509.KeyUsage:
    """digitalSignature always; keyEncipherment for RSA leaves; cert and CRL signing for CAs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_cert(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PrivateKey,
    signing_key: PrivateKey,
    not_before: datetime,
    lifetime: timedelta,
    path_length: int | None,
) -> x509.Certificate:
    pub = public_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(signing_key, _sign_hash(signing_key))  # type: ignore[arg-type]


def _create_hierarchy(data_dir: Path, clock: Clock) -> None:
    """A fresh ECDSA P-256 root and intermediate; names carry a random tag per install."""
    tag = secrets.token_hex(3)
    now = clock.now() - _BACKDATE
    root_key = generate_private_key("ec256")
    inter_key = generate_private_key("ec256")
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certsmith"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"certsmith Root CA {tag}"),
        ]
    )
    inter_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certsmith"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"certsmith Intermediate CA {tag}"),
        ]
    )
    root = _ca_cert(root_name, root_name, root_key, root_key, now, _ROOT_LIFETIME, None)
    inter = _ca_cert(inter_name, root_name, inter_key, root_key, now, _INTERMEDIATE_LIFETIME, 0)
    ca_dir = data_dir / "ca"
    write_private(ca_dir / "root.key", private_key_pem(root_key))
    write_private(ca_dir / "intermediate.key", private_key_pem(inter_key))
    write_public(ca_dir / "intermediate.pem", _pem(inter))
    # root.pem last: its presence marks a complete hierarchy.
    write_public(data_dir / "root.pem", _pem(root))


ALTERNATE_ROOT = "alternate-root.pem"


def _create_alternate(
    data_dir: Path, intermediate: x509.Certificate, key: PrivateKey, clock: Clock
) -> None:
    """A second root that cross-signs the intermediate's key: the alternate chain."""
    now = clock.now() - _BACKDATE
    cn = intermediate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    tag = str(cn).rsplit(" ", 1)[-1]
    root_key = generate_private_key("ec256")
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certsmith"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"certsmith Alternate Root CA {tag}"),
        ]
    )
    root = _ca_cert(root_name, root_name, root_key, root_key, now, _ROOT_LIFETIME, None)
    cross = _ca_cert(intermediate.subject, root_name, key, root_key, now, _INTERMEDIATE_LIFETIME, 0)
    ca_dir = data_dir / "ca"
    write_private(ca_dir / "alternate-root.key", private_key_pem(root_key))
    write_public(ca_dir / "intermediate-cross.pem", _pem(cross))
    write_public(data_dir / ALTERNATE_ROOT, _pem(root))


def ensure_listener_certificate(
    ca: CertificateAuthority, data_dir: Path, hosts: list[str]
) -> tuple[Path, Path]:
    """The HTTPS listener's certificate, re-issued when its names change or it nears expiry."""
    cert_path, key_path = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
    dns = sorted({h for h in hosts if not _is_ip(h)} | {"localhost"})
    ips = sorted({h for h in hosts if _is_ip(h)} | {"127.0.0.1", "::1"})
    if cert_path.exists() and key_path.exists() and _listener_is_current(ca, cert_path, dns, ips):
        return cert_path, key_path
    key = generate_private_key("ec256")
    issued = ca.issue(key.public_key(), dns, _LISTENER_LIFETIME, ip_addresses=ips)
    write_private(key_path, private_key_pem(key))
    write_public(cert_path, issued.chain_pem.encode())
    return cert_path, key_path


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _listener_is_current(
    ca: CertificateAuthority, path: Path, dns: list[str], ips: list[str]
) -> bool:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    if cert.issuer != ca.intermediate.subject:
        return False
    if cert.not_valid_after_utc - ca._clock.now() < timedelta(days=30):
        return False
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    have_ips = sorted(str(a) for a in san.get_values_for_type(x509.IPAddress))
    return sorted(san.get_values_for_type(x509.DNSName)) == dns and have_ips == ips
