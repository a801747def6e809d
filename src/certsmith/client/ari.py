"""ACME Renewal Information (RFC 9773): certificate ids, renewalInfo, windows, re-checks.

The CA suggests a window in which to renew each certificate. The client picks one moment
uniformly at random inside it (§4.2), keeps that moment for as long as the window stays the
same, and asks again once the Retry-After the CA sent has passed (§4.3), bounded to between
one minute and one day. When no usable answer comes, it asks again later: soon, with a
doubling back-off, after a temporary failure (no connection, timeout, 5xx); after six hours
after any other (4xx, a malformed body, an empty window).

What the client remembers lives in the certificate's renewal configuration, under the keys
in `STATE_KEYS`; it belongs to the certificate named by `ari_cert_id` and is dropped when
that certificate is replaced.
"""

from __future__ import annotations

import email.utils
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography import x509

from certsmith.acme.jose import b64url_encode
from certsmith.client.session import AcmeClientError, AcmeSession

MIN_RECHECK = timedelta(minutes=1)
MAX_RECHECK = timedelta(days=1)
LONG_TERM_RECHECK = timedelta(hours=6)
FIRST_BACKOFF = timedelta(minutes=1)

STATE_KEYS = (
    "ari_cert_id",
    "ari_window",
    "ari_renew_at",
    "ari_next_check",
    "ari_explanation_url",
    "ari_failures",
)

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})"
)


class AriUnavailable(Exception):
    """No usable renewalInfo answer this time.

    `temporary` failures are retried with a back-off; `retry_at` is the CA's own
    Retry-After on the failed answer, when it sent one.
    """

    def __init__(self, reason: str, *, temporary: bool, retry_at: datetime | None = None):
        super().__init__(reason)
        self.temporary = temporary
        self.retry_at = retry_at


# --- the certificate identifier (§4.1) ---


def serial_octets(serial: int) -> bytes:
    """The content octets of the DER INTEGER `serial`: minimal two's complement, so a
    positive serial whose top bit is set gains a leading zero byte."""
    length = (serial if serial >= 0 else ~serial).bit_length() // 8 + 1
    return serial.to_bytes(length, "big", signed=True)


def certificate_id(certificate: x509.Certificate) -> str | None:
    """base64url(AKI keyIdentifier) "." base64url(serial octets), or None when the
    certificate names no authority key identifier (then it has no ARI id)."""
    try:
        aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    key_id = aki.value.key_identifier
    if not key_id:
        return None
    return f"{b64url_encode(key_id)}.{b64url_encode(serial_octets(certificate.serial_number))}"


# --- the RenewalInfo object (§4.2) ---


def parse_timestamp(value: object) -> datetime:
    """An RFC 3339 date-time with its offset, as an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"{value!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction, offset = match.group(7), match.group(8)
    second = min(second, 59)  # a leap second names the last second of its minute
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))
    if offset in ("Z", "z"):
        zone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
        zone = timezone(sign * delta)
    when = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
    return when.astimezone(UTC)


def format_timestamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Window:
    """A suggested renewal window: renew at some moment in [start, end]."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(
                f"the window ends ({format_timestamp(self.end)}) no later than it starts "
                f"({format_timestamp(self.start)})"
            )

    def __contains__(self, when: datetime) -> bool:
        return self.start <= when <= self.end

    def to_json(self) -> dict[str, str]:
        return {"start": format_timestamp(self.start), "end": format_timestamp(self.end)}

    @classmethod
    def from_json(cls, value: object) -> Window:
        if not isinstance(value, dict):
            raise ValueError("suggestedWindow is not an object")
        return cls(parse_timestamp(value.get("start")), parse_timestamp(value.get("end")))


@dataclass(frozen=True)
class RenewalInfo:
    window: Window
    explanation_url: str | None
    next_check: datetime


def parse_renewal_info(body: object) -> tuple[Window, str | None]:
    """suggestedWindow and the optional explanationURL; ValueError for anything unusable
    (a window whose end is not after its start is treated as no answer, §4.2)."""
    if not isinstance(body, dict):
        raise ValueError("the renewalInfo answer is not a JSON object")
    if "suggestedWindow" not in body:
        raise ValueError("the renewalInfo answer has no suggestedWindow")
    window = Window.from_json(body["suggestedWindow"])
    explanation = body.get("explanationURL")
    return window, explanation if isinstance(explanation, str) and explanation else None


def random_time(window: Window, rng: random.Random | None = None) -> datetime:
    """A moment drawn uniformly from the window (§4.2), to the microsecond."""
    rng = rng or random.SystemRandom()
    span = (window.end - window.start) // timedelta(microseconds=1)
    return window.start + timedelta(microseconds=rng.randint(0, span))


# --- when to ask again (§4.3) ---


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """The moment a Retry-After header (seconds or an HTTP date) names, or None when it
    is absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def bounded(when: datetime, now: datetime) -> datetime:
    """A re-check time no sooner than a minute and no later than a day from now."""
    return min(max(when, now + MIN_RECHECK), now + MAX_RECHECK)


def next_check_after_failure(error: AriUnavailable, failures: int, now: datetime) -> datetime:
    """When to ask again after the `failures`-th failure in a row (counting this one)."""
    if error.retry_at is not None:
        return bounded(error.retry_at, now)
    if not error.temporary:
        return now + LONG_TERM_RECHECK
    doublings = min(max(failures - 1, 0), 16)
    return now + min(FIRST_BACKOFF * (1 << doublings), LONG_TERM_RECHECK)


# --- talking to the CA ---


async def get(session: AcmeSession, url: str) -> httpx.Response:
    """A plain unauthenticated GET through the session's HTTP client (renewalInfo is not
    POST-as-GET, RFC 9773 §4.1); transport failures become AcmeClientError.

    Uses the session's internal request helper until AcmeSession offers a public GET.
    """
    return await session.get(url)


async def renewal_info_base(session: AcmeSession) -> str | None:
    """The directory's renewalInfo URL, or None when the CA does not offer ARI."""
    value = (await session.directory()).get("renewalInfo")
    return value if isinstance(value, str) and value else None


def renewal_info_url(base: str, cert_id: str) -> str:
    return f"{base.rstrip('/')}/{cert_id}"


async def fetch(session: AcmeSession, base: str, cert_id: str, now: datetime) -> RenewalInfo:
    """GET renewalInfo/<cert_id>; AriUnavailable says why there is no usable answer."""
    url = renewal_info_url(base, cert_id)
    try:
        response = await get(session, url)
    except AcmeClientError as err:
        raise AriUnavailable(str(err), temporary=True) from err
    header = retry_after(response.headers.get("Retry-After"), now)
    if response.status_code != 200:
        raise AriUnavailable(
            f"{url} answered HTTP {response.status_code}",
            temporary=response.status_code >= 500 or response.status_code == 429,
            retry_at=header,
        )
    try:
        window, explanation = parse_renewal_info(response.json())
    except ValueError as err:
        raise AriUnavailable(f"{url}: {err}", temporary=False, retry_at=header) from err
    next_check = bounded(header, now) if header is not None else now + LONG_TERM_RECHECK
    return RenewalInfo(window, explanation, next_check)


# --- what is remembered between runs ---


def without_state(config: dict[str, Any]) -> dict[str, Any]:
    """`config` without any ARI state (for a new certificate, or a CA without ARI)."""
    return {k: v for k, v in config.items() if k not in STATE_KEYS}


@dataclass
class AriState:
    """ARI facts about one certificate, kept in its renewal configuration."""

    cert_id: str
    window: Window | None = None
    renew_at: datetime | None = None
    next_check: datetime | None = None
    explanation_url: str | None = None
    failures: int = 0

    @classmethod
    def from_config(cls, config: dict[str, Any], cert_id: str) -> AriState:
        """The stored state when it is about this certificate and readable, else a new one."""
        if config.get("ari_cert_id") != cert_id:
            return cls(cert_id)
        try:
            window = Window.from_json(config["ari_window"]) if config.get("ari_window") else None
            renew_at = _optional_time(config.get("ari_renew_at"))
            next_check = _optional_time(config.get("ari_next_check"))
            failures = int(config.get("ari_failures") or 0)
        except (TypeError, ValueError):
            return cls(cert_id)
        explanation = config.get("ari_explanation_url")
        return cls(
            cert_id,
            window,
            renew_at if window is not None and renew_at is not None else None,
            next_check,
            explanation if isinstance(explanation, str) else None,
            failures,
        )

    def to_config(self, config: dict[str, Any]) -> dict[str, Any]:
        updated = without_state(config)
        updated["ari_cert_id"] = self.cert_id
        if self.window is not None:
            updated["ari_window"] = self.window.to_json()
        if self.renew_at is not None:
            updated["ari_renew_at"] = format_timestamp(self.renew_at)
        if self.next_check is not None:
            updated["ari_next_check"] = format_timestamp(self.next_check)
        if self.explanation_url is not None:
            updated["ari_explanation_url"] = self.explanation_url
        if self.failures:
            updated["ari_failures"] = self.failures
        return updated

    def should_check(self, now: datetime) -> bool:
        return self.next_check is None or now >= self.next_check

    def record(self, info: RenewalInfo, rng: random.Random | None = None) -> None:
        """Take a new answer; the chosen moment is kept while it still lies in the window."""
        if self.renew_at is None or info.window != self.window or self.renew_at not in info.window:
            self.renew_at = random_time(info.window, rng)
        self.window = info.window
        self.explanation_url = info.explanation_url
        self.next_check = info.next_check
        self.failures = 0

    def record_failure(self, error: AriUnavailable, now: datetime) -> None:
        """Keep what an earlier answer said, and ask again later."""
        self.failures += 1
        self.next_check = next_check_after_failure(error, self.failures, now)


def _optional_time(value: object) -> datetime | None:
    return None if value is None else parse_timestamp(value)
