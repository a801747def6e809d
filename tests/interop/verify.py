"""Chain verification with cryptography's X.509 path builder (RFC 5280 + CA/B profile)."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store


def verify_chain(chain_pem: bytes, root_path: Path, name: str) -> x509.Certificate:
    """The leaf of `chain_pem` after it verified for `name` up to the root; raises if not."""
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem)
    root = x509.load_pem_x509_certificate(root_path.read_bytes())
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    verifier.verify(leaf, intermediates)
    return leaf
