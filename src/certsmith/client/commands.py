"""`certsmith issue | renew | revoke | certificates | account ...`: the client's CLI."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from certsmith.acme.keys import generate_private_key
from certsmith.acme.problems import AcmeProblem
from certsmith.client import account as account_ops
from certsmith.client import orders
from certsmith.client.issuance import obtain
from certsmith.client.orders import OrderFailed
from certsmith.client.renewal import renewal_time
from certsmith.client.runner import (
    AccountOptions,
    certificate_name,
    describe,
    hook_environment,
    jwk_of,
    open_session,
    parse_identifiers,
    resolve_server,
    trust,
)
from certsmith.client.session import AcmeClientError
from certsmith.client.solving import ListenerPool, build_solvers
from certsmith.client.store import Store, default_config_dir

T = TypeVar("T")
KEY_TYPES = ["ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"]
# RFC 5280 §5.3.1 reason names as certbot spells them.
REASONS = {
    "unspecified": 0,
    "keycompromise": 1,
    "affiliationchanged": 3,
    "superseded": 4,
    "cessationofoperation": 5,
}


def run(coroutine: Awaitable[T]) -> T:
    """Run a command's work; expected failures become one line and exit status 1."""
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except (AcmeProblem, AcmeClientError, OrderFailed) as err:
        raise click.ClickException(describe(err)) from None


def friendly(function: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures anywhere in a command become one line and exit status 1."""

    @functools.wraps(function)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (AcmeProblem, AcmeClientError, OrderFailed) as err:
            raise click.ClickException(describe(err)) from None

    return wrapped


def choose_ca(
    o: dict[str, Any], store: Store, cert_name: str | None = None
) -> tuple[str, Path | None]:
    """Which CA and CA bundle: --server/--ca-bundle, else the certificate's own, else the
    store's only account; never a public CA by default."""
    bundle = Path(o["ca_bundle"]) if o.get("ca_bundle") else None
    if o.get("server"):
        server = resolve_server(o["server"])
        return server, bundle or _stored_bundle(store.account_meta(server))
    config = store.load_renewal(cert_name) if cert_name else None
    if config is not None:
        stored = config.get("ca_bundle")
        return str(config["server"]), bundle or (Path(stored) if stored else None)
    accounts = store.accounts()
    if len(accounts) == 1:
        return str(accounts[0]["directory"]), bundle or _stored_bundle(accounts[0])
    known = ", ".join(str(a.get("directory")) for a in accounts) or "none yet"
    raise AcmeClientError(f"say which CA with --server (accounts in the store: {known})")


def _stored_bundle(meta: dict[str, Any] | None) -> Path | None:
    value = (meta or {}).get("ca_bundle")
    return Path(value) if value else None


def common(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options every client command takes: which CA, how to trust it, where files live."""
    for option in reversed(
        [
            click.option(
                "--server",
                default=None,
                help="Directory URL or a short name (letsencrypt, letsencrypt-staging, "
                "pebble, ...); default: the CA of --cert-name, or the store's only account.",
            ),
            click.option(
                "--ca-bundle",
                type=click.Path(exists=True, path_type=Path),
                help="PEM roots to trust for the CA's HTTPS (private CAs).",
            ),
            click.option(
                "--config-dir",
                type=click.Path(path_type=Path),
                help="Store; default /etc/certsmith as root, else ~/.local/share/certsmith.",
            ),
        ]
    ):
        function = option(function)
    return friendly(function)


def _store(config_dir: Path | None) -> Store:
    return Store(config_dir or default_config_dir())


def solver_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--standalone", is_flag=True, help="Answer http-01 with a built-in server."
            ),
            click.option("--http-01-port", type=int, default=80, show_default=True),
            click.option("--http-01-address", default=None, help="Address to bind (default all)."),
            click.option(
                "--webroot",
                type=click.Path(path_type=Path),
                help="Answer http-01 by writing files under this document root.",
            ),
            click.option("--dns-hook", help="Run 'CMD present|cleanup RECORD VALUE' for dns-01."),
            click.option(
                "--rfc2136-server", help="HOST[:PORT] taking RFC 2136 updates for dns-01."
            ),
            click.option("--rfc2136-tsig-name"),
            click.option("--rfc2136-tsig-secret"),
            click.option("--rfc2136-tsig-algorithm", default="hmac-sha256", show_default=True),
            click.option("--rfc2136-zone"),
            click.option("--dns-resolver", help="HOST[:PORT] to check dns-01 records are visible."),
            click.option("--dns-timeout", type=float, default=120.0, show_default=True),
            click.option(
                "--tls-alpn", is_flag=True, help="Answer tls-alpn-01 with a built-in server."
            ),
            click.option("--tls-alpn-01-port", type=int, default=443, show_default=True),
            click.option(
                "--tls-alpn-01-address", default=None, help="Address to bind (default all)."
            ),
        ]
    ):
        function = option(function)
    return function


def _solver_config(o: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    resolver = o["dns_resolver"]
    if o["dns_hook"]:
        config["dns_hook"] = {
            "command": o["dns_hook"],
            "resolver": resolver,
            "timeout": o["dns_timeout"],
        }
    if o["rfc2136_server"]:
        config["rfc2136"] = {
            "server": o["rfc2136_server"],
            "tsig_name": o["rfc2136_tsig_name"],
            "tsig_secret": o["rfc2136_tsig_secret"],
            "tsig_algorithm": o["rfc2136_tsig_algorithm"],
            "zone": o["rfc2136_zone"],
            "resolver": resolver,
            "timeout": o["dns_timeout"],
        }
    if o["standalone"]:
        config["standalone"] = {"port": o["http_01_port"], "address": o["http_01_address"]}
    if o["webroot"]:
        config["webroot"] = str(Path(o["webroot"]).resolve())
    if o["tls_alpn"]:
        config["tls_alpn"] = {"port": o["tls_alpn_01_port"], "address": o["tls_alpn_01_address"]}
    return config


@click.command()
@click.option(
    "-d",
    "--domain",
    "domains",
    multiple=True,
    required=True,
    help="A DNS name, *.wildcard or IP address; repeat for more.",
)
@common
@solver_options
@click.option("--email", help="Contact for the new account.")
@click.option("--agree-tos", is_flag=True, help="Agree to the CA's terms of service.")
@click.option("--eab-kid", help="External Account Binding key id from the CA.")
@click.option("--eab-hmac-key", help="External Account Binding MAC key (base64url).")
@click.option("--key-type", type=click.Choice(KEY_TYPES), default="ec256", show_default=True)
@click.option("--reuse-key", is_flag=True, help="Keep the certificate's current private key.")
@click.option("--cert-name", help="Name in live/; default the first domain.")
@click.option("--profile", help="Certificate profile, when the CA lists profiles.")
@click.option("--preferred-chain", help="Issuer CN of the chain's top certificate to prefer.")
@click.option("--deploy-hook", help="Shell command run after success, with CERTSMITH_* set.")
def issue(**o: Any) -> None:
    """Obtain a certificate and store it under live/NAME/."""
    store = _store(o["config_dir"])
    identifiers = parse_identifiers(list(o["domains"]))
    name = o["cert_name"] or certificate_name(identifiers)
    server, bundle = choose_ca(o, store, name)
    config = {
        "server": server,
        "ca_bundle": str(bundle.resolve()) if bundle else None,
        "domains": [i.value for i in identifiers],
        "solvers": _solver_config(o),
        "key_type": o["key_type"],
        "reuse_key": o["reuse_key"],
        "profile": o["profile"],
        "preferred_chain": o["preferred_chain"],
        "deploy_hook": o["deploy_hook"],
    }
    options = AccountOptions(o["email"], o["agree_tos"], o["eab_kid"], o["eab_hmac_key"])
    live = run(issue_certificate(store, name, config, options))
    click.echo(f"certificate for {', '.join(config['domains'])} in {live}")


async def issue_certificate(
    store: Store,
    name: str,
    config: dict[str, Any],
    options: AccountOptions | None,
    *,
    replaces: str | None = None,
    listeners: ListenerPool | None = None,
) -> Path:
    """Issue (or renew) NAME as `config` says, under NAME's lock; returns live/NAME.

    `replaces` is the ARI id of the certificate this one succeeds (RFC 9773 §5);
    `listeners` lends standalone responders that outlive this one issuance.
    """
    with store.lock(name):
        identifiers = parse_identifiers(config["domains"])
        solvers = build_solvers(config["solvers"])
        key = store.current_key(name) if config.get("reuse_key") else None
        key = key or generate_private_key(config.get("key_type", "ec256"))
        bundle = Path(config["ca_bundle"]) if config.get("ca_bundle") else None
        verify = trust(bundle)
        session = await open_session(
            store, config["server"], verify, options, config.get("ca_bundle")
        )
        async with session, contextlib.AsyncExitStack() as stack:
            for index, solver in enumerate(solvers):
                shared = await listeners.adopt(solver) if listeners else None
                if shared is None:
                    await stack.enter_async_context(solver)
                else:
                    solvers[index] = shared
            chain = await obtain(
                session,
                identifiers,
                solvers,
                key,
                profile=config.get("profile"),
                preferred_chain=config.get("preferred_chain"),
                replaces=replaces,
            )
        live = store.save_certificate(name, chain, key)
        store.save_renewal(name, config)
        if config.get("deploy_hook"):
            await _deploy(config["deploy_hook"], name, live.directory, identifiers)
        return live.directory


async def _deploy(command: str, name: str, directory: Path, identifiers: Any) -> None:
    """Run the user's deploy hook without stalling other renewals in this process."""
    process = await asyncio.create_subprocess_shell(
        command,
        env=hook_environment(name, directory, identifiers),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip()[-500:]
        raise AcmeClientError(
            f"the new certificate is saved in {directory}, but the deploy hook exited "
            f"{process.returncode}: {tail}"
        )


@click.command()
@common
@click.option("--cert-path", type=click.Path(exists=True, path_type=Path))
@click.option("--cert-name", help="A certificate in the store's live/.")
@click.option("--reason", type=click.Choice(sorted(REASONS)), default="unspecified")
@click.option(
    "--key-path",
    type=click.Path(exists=True, path_type=Path),
    help="Sign with the certificate's own key instead of the account key.",
)
def revoke(**o: Any) -> None:
    """Revoke a certificate (RFC 8555 §7.6)."""
    from cryptography import x509

    from certsmith.acme.keys import load_private_key

    store = _store(o["config_dir"])
    path = o["cert_path"]
    if path is None:
        live = store.live(o["cert_name"] or "")
        if live is None:
            raise click.ClickException("give --cert-path or the --cert-name of a stored one")
        path = live.directory / "cert.pem"
    certificate = x509.load_pem_x509_certificates(Path(path).read_bytes())[0]
    server, bundle = choose_ca(o, store, o["cert_name"])
    verify = trust(bundle)

    cert_key = jwk_of(load_private_key(Path(o["key_path"]).read_bytes())) if o["key_path"] else None

    async def work() -> None:
        if cert_key is not None:
            from certsmith.client.session import AcmeSession

            async with AcmeSession(server, cert_key, verify=verify) as session:
                await orders.revoke(session, certificate, REASONS[o["reason"]], cert_key)
            return
        async with await open_session(store, server, verify, None) as session:
            await orders.revoke(session, certificate, REASONS[o["reason"]])

    run(work())
    click.echo(f"revoked certificate {certificate.serial_number:x}")


@click.command()
@click.option("--config-dir", type=click.Path(path_type=Path))
def certificates(config_dir: Path | None) -> None:
    """List stored certificates with their names, expiry and renewal time."""
    store = _store(config_dir)
    now = datetime.now(UTC)
    names = store.names()
    if not names:
        click.echo(f"no certificates in {store.root}")
    for name in names:
        live = store.live(name)
        if live is None:
            continue
        cert = live.certificate()
        days = (cert.not_valid_after_utc - now).days
        config = store.load_renewal(name) or {}
        # The CA's ARI choice, when one is stored, beats the lifetime rule (RFC 9773).
        renew_moment = renewal_time(cert)
        basis = "by lifetime"
        if config.get("ari_renew_at"):
            from certsmith.client.ari import parse_timestamp

            renew_moment, basis = parse_timestamp(config["ari_renew_at"]), "by the CA's ARI"
        renew_at = f"{renew_moment:%Y-%m-%d %H:%M} UTC ({basis})"
        click.echo(
            f"{name}\n  domains: {' '.join(config.get('domains', []))}\n"
            f"  expires: {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({days} days)\n"
            f"  renew after: {renew_at}\n  path: {live.fullchain}"
        )


@click.group("account")
def account_group() -> None:
    """The account at a CA: register, show, rollover, deactivate."""


@account_group.command("register")
@common
@click.option("--email")
@click.option("--agree-tos", is_flag=True)
@click.option("--eab-kid", help="External Account Binding key id from the CA.")
@click.option("--eab-hmac-key", help="External Account Binding MAC key (base64url).")
def account_register(**o: Any) -> None:
    store = _store(o["config_dir"])
    if not o["server"]:
        raise AcmeClientError("say which CA to register with: --server URL or a short name")
    server, bundle = choose_ca(o, store)
    options = AccountOptions(o["email"], o["agree_tos"], o["eab_kid"], o["eab_hmac_key"])
    absolute = str(bundle.resolve()) if bundle else None

    async def work() -> str:
        async with await open_session(store, server, trust(bundle), options, absolute) as session:
            return str(session.kid)

    click.echo(f"account {run(work())}")


@account_group.command("show")
@common
def account_show(**o: Any) -> None:
    store = _store(o["config_dir"])
    server, bundle = choose_ca(o, store)

    async def work() -> dict[str, Any]:
        async with await open_session(store, server, trust(bundle), None) as session:
            return {"url": session.kid, **await account_ops.show(session)}

    for key, value in run(work()).items():
        click.echo(f"{key}: {value}")


@account_group.command("rollover")
@common
@click.option("--key-type", type=click.Choice([*KEY_TYPES, "ed25519"]), default="ec256")
def account_rollover(**o: Any) -> None:
    """Replace the account key (RFC 8555 §7.3.5); the new key is stored first."""
    store = _store(o["config_dir"])
    server, bundle = choose_ca(o, store)

    async def work() -> None:
        async with await open_session(store, server, trust(bundle), None) as session:
            new_key = generate_private_key(o["key_type"])
            await account_ops.rollover(session, jwk_of(new_key))
            store.save_account_key(server, new_key)

    run(work())
    click.echo("account key replaced")


@account_group.command("deactivate")
@common
@click.confirmation_option(prompt="Deactivate the account? This cannot be undone.")
def account_deactivate(**o: Any) -> None:
    store = _store(o["config_dir"])
    server, bundle = choose_ca(o, store)

    async def work() -> None:
        async with await open_session(store, server, trust(bundle), None) as session:
            await account_ops.deactivate(session)
        store.forget_account(server)

    run(work())
    click.echo("account deactivated")
