"""When to renew, and renewing many certificates at once.

Without ARI a certificate is due at two thirds of its lifetime, or at one half when it
lives ten days or less (short-lived certificates need the margin).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509

_SHORT_LIVED = timedelta(days=10)


def renewal_time(certificate: x509.Certificate) -> datetime:
    """The moment a certificate becomes due by its lifetime alone."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    lifetime = end - start
    fraction = 0.5 if lifetime <= _SHORT_LIVED else 2 / 3
    return start + lifetime * fraction


def is_due(certificate: x509.Certificate, now: datetime) -> bool:
    return now >= renewal_time(certificate)
