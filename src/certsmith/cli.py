"""The `certsmith` command line."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import click

from certsmith import __version__


def parse_duration(value: str) -> timedelta:
    """'90d', '12h', '30m' or '45s'."""
    match = re.fullmatch(r"(\d+)([dhms])", value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration like 90d, 12h, 30m or 45s")
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


class _Commands(click.Group):
    """Client commands are imported only when named: each start loads what it runs, which
    keeps `certsmith issue` quick (most of its time is Python starting up)."""

    _lazy: ClassVar[dict[str, str]] = {
        "issue": "certsmith.client.commands:issue",
        "revoke": "certsmith.client.commands:revoke",
        "certificates": "certsmith.client.commands:certificates",
        "account": "certsmith.client.commands:account_group",
        "renew": "certsmith.client.renew_command:renew",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self._lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module, attribute = self._lazy[name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)


@click.group(cls=_Commands)
@click.version_option(__version__, prog_name="certsmith")
def main() -> None:
    """certsmith: an ACME (RFC 8555) certificate authority and client."""


def _port_option(
    name: str, default: int, help_text: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        name, type=click.IntRange(1, 65535), default=default, show_default=True, help=help_text
    )


@main.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("data"),
    show_default=True,
    help="CA keys, root.pem, listener TLS files and the database.",
)
@click.option("--listen", default="127.0.0.1:14000", show_default=True, help="HOST:PORT.")
@click.option(
    "--database",
    default=None,
    help="SQLAlchemy URL; default sqlite:///DATA_DIR/certsmith.db.",
)
@_port_option("--http01-port", 80, "Port the VA connects to for http-01.")
@_port_option("--tlsalpn01-port", 443, "Port the VA connects to for tls-alpn-01.")
@click.option(
    "--dns-server",
    default=None,
    help="HOST:PORT of the DNS server the VA asks; default: the system resolver.",
)
@click.option("--plain-http", is_flag=True, help="Serve HTTP (behind a TLS proxy).")
@click.option("--tls-cert", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--tos-url", default=None, help="Terms of service URL; default: served at /terms.")
@click.option("--website", default=None, help="Website URL for the directory meta.")
@click.option("--caa-identity", multiple=True, help="Domain CAA records name for this CA.")
@click.option("--block-suffix", multiple=True, help="Refuse names under this suffix.")
@click.option(
    "--allow-private-ips",
    is_flag=True,
    help="Accept IP identifiers in private, loopback and link-local ranges.",
)
@click.option("--cert-lifetime", default="90d", show_default=True, help="e.g. 90d, 6d, 12h.")
@click.option(
    "--authz-lifetime",
    default="30d",
    show_default=True,
    help="How long a valid authorization is reused for new orders of its account.",
)
@click.option(
    "--eab-required",
    is_flag=True,
    help="New accounts need an External Account Binding (see `certsmith eab`).",
)
@click.option("--log-level", default="INFO", show_default=True)
def serve(**options: Any) -> None:
    """Run the CA, creating DATA_DIR with a new root and intermediate on first start."""
    import uvicorn

    from certsmith.server.app import create_app
    from certsmith.server.clock import SystemClock
    from certsmith.server.events import configure_logging
    from certsmith.server.issuance.ca import CertificateAuthority, ensure_listener_certificate

    try:
        config = _server_config(options)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    configure_logging(options["log_level"].upper())
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = CertificateAuthority.load_or_create(config.data_dir, SystemClock())
    ssl: dict[str, str] = {}
    if not config.plain_http:
        cert, key = (config.tls_cert, config.tls_key)
        if cert is None or key is None:
            cert, key = ensure_listener_certificate(ca, config.data_dir, [config.listen_host])
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    host, port = config.listen_host, config.listen_port
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"certsmith {__version__}")
    click.echo(f"directory: {config.scheme}://{shown_host}:{port}/directory")
    click.echo(f"root certificate: {config.data_dir / 'root.pem'}")
    sys.stdout.flush()
    uvicorn_config = uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        # Clients that keep connections open must not hold a restart up.
        timeout_graceful_shutdown=3,
        **ssl,  # type: ignore[arg-type]
    )
    uvicorn.Server(uvicorn_config).run()


def _server_config(options: dict[str, Any]) -> Any:
    """A validated ServerConfig from `serve`'s flags; ValueError names what is wrong."""
    from certsmith.server.config import ServerConfig, parse_host_port

    host, port = parse_host_port(options["listen"])
    dns = options["dns_server"]
    return ServerConfig(
        data_dir=options["data_dir"].resolve(),
        listen_host=host,
        listen_port=port,
        database_url=options["database"],
        plain_http=options["plain_http"],
        tls_cert=options["tls_cert"],
        tls_key=options["tls_key"],
        http01_port=options["http01_port"],
        tlsalpn01_port=options["tlsalpn01_port"],
        dns_server=parse_host_port(dns, default_port=53) if dns else None,
        terms_of_service=options["tos_url"],
        website=options["website"],
        caa_identities=options["caa_identity"] or ("certsmith.invalid",),
        blocked_suffixes=options["block_suffix"],
        allow_private_ips=options["allow_private_ips"],
        certificate_lifetime=parse_duration(options["cert_lifetime"]),
        valid_authorization_lifetime=parse_duration(options["authz_lifetime"]),
        eab_required=options["eab_required"],
    )


_data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path("data"), show_default=True
)
_database_option = click.option("--database", default=None, help="SQLAlchemy URL.")


def _run_with_store(data_dir: Path, database: str | None, action: Any) -> Any:
    """Open the CA's database (creating or migrating it), run `action(store)`, close."""
    import asyncio

    from certsmith.server.storage import Store

    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    from certsmith.server.config import default_database_url

    url = database or default_database_url(data_dir)

    async def run() -> Any:
        store = Store(url)
        try:
            await store.migrate()
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


@main.group()
def eab() -> None:
    """External Account Binding keys (RFC 8555 §7.3.4) for `serve --eab-required`."""


@eab.command("add")
@_data_dir_option
@_database_option
@click.option("--comment", default="", help="Who the key is for; shown by `eab list`.")
def eab_add(data_dir: Path, database: str | None, comment: str) -> None:
    """Create a key id and MAC key; give both to one ACME user."""
    from certsmith.server import eab as eab_keys

    now = _now()
    key_id, mac = _run_with_store(
        data_dir, database, lambda store: eab_keys.add_key(store, now, comment)
    )
    click.echo(f"key id:  {key_id}\nmac key: {mac}")


@eab.command("list")
@_data_dir_option
@_database_option
def eab_list(data_dir: Path, database: str | None) -> None:
    """Key ids with their state; MAC keys are never shown again."""
    from certsmith.server import eab as eab_keys

    for row in _run_with_store(data_dir, database, eab_keys.list_keys):
        state = "revoked" if row.revoked_at else ("bound" if row.account_id else "unused")
        account = row.account_id or "-"
        click.echo(f"{row.key_id}\t{state}\taccount={account}\t{row.comment}")


@eab.command("revoke")
@_data_dir_option
@_database_option
@click.argument("key_id")
def eab_revoke(data_dir: Path, database: str | None, key_id: str) -> None:
    """Refuse KEY_ID for new bindings from now on."""
    from certsmith.server import eab as eab_keys

    now = _now()
    if not _run_with_store(data_dir, database, lambda s: eab_keys.revoke_key(s, key_id, now)):
        raise click.ClickException(f"no unrevoked key {key_id!r}")
    click.echo(f"revoked {key_id}")


def _now() -> Any:
    from certsmith.server.clock import SystemClock

    return SystemClock().now()


if __name__ == "__main__":
    main()
