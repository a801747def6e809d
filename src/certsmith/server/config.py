"""Server settings, validated once at start. Flags now; a TOML file can feed the same type."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


def parse_host_port(value: str, *, default_port: int | None = None) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or, with a default port, a bare host."""
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep:
            raise ValueError(f"unterminated IPv6 address in {value!r}")
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host, port_text = value, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"{value!r} needs a port")
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {value!r}")
    return host, int(port_text)


def default_database_url(data_dir: Path) -> str:
    """The embedded SQLite database every part of one CA shares (server, `eab` commands)."""
    return f"sqlite:///{data_dir.resolve() / 'certsmith.db'}"


@dataclass(frozen=True)
class ServerConfig:
    data_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 14000
    database_url: str | None = None
    plain_http: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Where the VA connects for validation (RFC 8555 §8.3 says port 80; tests move it).
    http01_port: int = 80
    tlsalpn01_port: int = 443
    dns_server: tuple[str, int] | None = None
    validation_timeout: float = 10.0
    # Directory meta (RFC 8555 §7.1.1).
    terms_of_service: str | None = None
    website: str | None = None
    caa_identities: tuple[str, ...] = ("certsmith.invalid",)
    # RFC 8555 §7.3.4: new accounts must present an operator-issued MAC key.
    eab_required: bool = False
    # Policy.
    blocked_suffixes: tuple[str, ...] = field(default_factory=tuple)
    allow_private_ips: bool = False
    certificate_lifetime: timedelta = timedelta(days=90)
    pending_authorization_lifetime: timedelta = timedelta(days=7)
    valid_authorization_lifetime: timedelta = timedelta(days=30)
    order_lifetime: timedelta = timedelta(days=7)
    max_identifiers_per_order: int = 100
    nonce_lifetime: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.certificate_lifetime < timedelta(hours=1):
            raise ValueError("certificate lifetime must be at least one hour")
        if self.certificate_lifetime > timedelta(days=398):
            raise ValueError("certificate lifetime must not exceed 398 days (CA/B BR 6.3.2)")
        # Shorter than an order's lifetime is allowed: reuse then never happens (it needs
        # the authorization to outlive the new order), which is a way to turn it off.
        if self.valid_authorization_lifetime < timedelta(minutes=1):
            raise ValueError("authorization lifetime must be at least one minute")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        from certsmith.server.policy import normalise_suffix

        for suffix in self.blocked_suffixes:
            normalise_suffix(suffix)

    @property
    def terms_version(self) -> str:
        """What an account agrees to: the configured terms URL, or our built-in page."""
        return self.terms_of_service or "certsmith-built-in-terms"

    @property
    def scheme(self) -> str:
        return "http" if self.plain_http else "https"

    @property
    def database(self) -> str:
        return self.database_url or default_database_url(self.data_dir)
