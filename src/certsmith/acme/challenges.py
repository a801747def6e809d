"""Challenge responses both sides compute: dns-01 (RFC 8555 §8.4) and tls-alpn-01 (RFC 8737).

The CA checks what a client publishes with these; the client builds what it publishes with them.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519

from certsmith.acme.jose import b64url_encode
from certsmith.acme.keys import PrivateKey, generate_private_key

# RFC 8737 §6.2: the ALPN protocol ID, and §6.1: id-pe-acmeIdentifier.
ACME_TLS_ALPN_PROTOCOL = "acme-tls/1"
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")

# DER header of an OCTET STRING of 32 bytes: tag 0x04, length 0x20.
_OCTET_STRING_32 = b"\x04\x20"
# A challenge certificate only has to outlive one validation; a week absorbs clock skew.
_CERT_LIFETIME = datetime.timedelta(days=7)


def dns01_record_name(name: str) -> str:
    """RFC 8555 §8.4: where the TXT record for `name` (a base name, never "*.") lives."""
    return f"_acme-challenge.{name}"


def dns01_txt_value(key_authorization: str) -> str:
    """RFC 8555 §8.4: the TXT value, unpadded base64url of SHA-256(key authorization)."""
    return b64url_encode(hashlib.sha256(key_authorization.encode()).digest())


def tlsalpn01_extension_value(key_authorization: str) -> bytes:
    """RFC 8737 §3: the acmeIdentifier value, a DER OCTET STRING of SHA-256(key authorization)."""
    return _OCTET_STRING_32 + hashlib.sha256(key_authorization.encode()).digest()


def tlsalpn01_certificate(
    identifier_type: str,
    value: str,
    key_authorization: str,
    key: PrivateKey | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed acme-tls/1 certificate for a "dns" or "ip" identifier (RFC 8737 §3).

    It has one SAN, the identifier, and the critical acmeIdentifier extension; a new P-256
    key is made unless `key` is given.
    """
    if identifier_type == "dns":
        san: x509.GeneralName = x509.DNSName(value)
    elif identifier_type == "ip":
        san = x509.IPAddress(ipaddress.ip_address(value))
    else:
        raise ValueError(f"tls-alpn-01 has no certificate for identifier type {identifier_type!r}")
    key = key if key is not None else generate_private_key("ec256")
    now = datetime.datetime.now(datetime.UTC)
    # The subject stays empty: RFC 8737 asks only for the SAN, and a CN would be a second
    # place for a name to disagree with it. An empty subject makes the SAN critical
    # (RFC 5280 §4.2.1.6).
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(
            x509.UnrecognizedExtension(
                ACME_IDENTIFIER_OID, tlsalpn01_extension_value(key_authorization)
            ),
            critical=True,
        )
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm), key
