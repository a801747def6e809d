"""When to renew a certificate: by the CA's ARI window when it offers one, else by lifetime.

Without ARI (RFC 9773) a certificate is due at two thirds of its lifetime, or at one half
when it lives ten days or less (short-lived certificates need the margin). With ARI it is
due at a moment drawn once from the CA's suggested window (see `certsmith.client.ari`);
when renewalInfo cannot be had, an earlier answer for the same certificate still counts,
and without one the lifetime rule does. An expired certificate is always due.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from certsmith.client import ari
from certsmith.client.session import AcmeClientError, AcmeSession

_SHORT_LIVED = timedelta(days=10)


def renewal_time(certificate: x509.Certificate) -> datetime:
    """The moment a certificate becomes due by its lifetime alone."""
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    lifetime = end - start
    fraction = 0.5 if lifetime <= _SHORT_LIVED else 2 / 3
    return start + lifetime * fraction


def is_due(certificate: x509.Certificate, now: datetime) -> bool:
    return now >= renewal_time(certificate)


def lifetime_basis(certificate: x509.Certificate) -> str:
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    return "half its lifetime" if lifetime <= _SHORT_LIVED else "two thirds of its lifetime"


@dataclass(frozen=True)
class Decision:
    """Whether a certificate is due, from when, and on what grounds."""

    due: bool
    at: datetime
    basis: str
    # The certificate's ARI id when the CA offers ARI: newOrder's `replaces` (RFC 9773 §5).
    replaces: str | None = None
    explanation_url: str | None = None
    # Why ARI did not answer this time, when it did not.
    ari_note: str | None = None


def by_lifetime(
    certificate: x509.Certificate,
    now: datetime,
    replaces: str | None = None,
    note: str | None = None,
) -> Decision:
    at = renewal_time(certificate)
    return Decision(now >= at, at, lifetime_basis(certificate), replaces, None, note)


async def decide(
    session: AcmeSession | None,
    certificate: x509.Certificate,
    config: dict[str, Any],
    now: datetime,
    rng: random.Random | None = None,
) -> tuple[Decision, dict[str, Any]]:
    """The decision for `certificate`, and its renewal configuration with the ARI state
    brought up to date. With `session` None the CA is not asked; stored state still counts.
    """
    cert_id = ari.certificate_id(certificate)
    if cert_id is None:
        return by_lifetime(certificate, now), ari.without_state(config)
    state = ari.AriState.from_config(config, cert_id)
    expired = now >= certificate.not_valid_after_utc
    base: str | None = None
    note: str | None = None
    if session is not None:
        try:
            base = await ari.renewal_info_base(session)
        except AcmeClientError as err:
            note = str(err)
        else:
            if base is None:
                # The CA offers no ARI (any more): the lifetime rule alone decides.
                return by_lifetime(certificate, now), ari.without_state(config)
        if base is not None and not expired and state.should_check(now):
            try:
                state.record(await ari.fetch(session, base, cert_id, now), rng)
            except ari.AriUnavailable as err:
                state.record_failure(err, now)
                note = str(err)
    updated = state.to_config(config)
    replaces = cert_id if base is not None else None
    if state.renew_at is None or state.window is None:
        return by_lifetime(certificate, now, replaces, note), updated
    basis = (
        f"ARI window {ari.format_timestamp(state.window.start)} to "
        f"{ari.format_timestamp(state.window.end)}"
    )
    decision = Decision(
        now >= state.renew_at or expired,
        state.renew_at,
        basis,
        replaces,
        state.explanation_url,
        note,
    )
    return decision, updated


async def replaces_id(session: AcmeSession | None, certificate: x509.Certificate) -> str | None:
    """The ARI id to send as `replaces` when renewing `certificate`, if the CA offers ARI."""
    if session is None:
        return None
    try:
        base = await ari.renewal_info_base(session)
    except AcmeClientError:
        return None
    return ari.certificate_id(certificate) if base is not None else None
