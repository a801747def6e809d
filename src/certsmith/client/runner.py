"""What every client command shares: the CA to talk to, trust, the stored account."""

from __future__ import annotations

import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwk

from certsmith.acme.identifiers import Identifier, normalise_dns_name, normalise_ip
from certsmith.acme.jose import AnyKey
from certsmith.acme.keys import PrivateKey, generate_private_key, private_key_pem
from certsmith.client import account
from certsmith.client.session import AcmeClientError, AcmeSession
from certsmith.client.store import Store

# Short names a user can give to --server.
SERVERS = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
    "buypass": "https://api.buypass.com/acme/directory",
    "zerossl": "https://acme.zerossl.com/v2/DV90",
    "pebble": "https://127.0.0.1:14000/dir",
    "certsmith": "https://127.0.0.1:14000/directory",
}


def resolve_server(value: str) -> str:
    if value in SERVERS:
        return SERVERS[value]
    if not value.startswith("https://") and not value.startswith("http://"):
        names = ", ".join(sorted(SERVERS))
        raise AcmeClientError(f"--server must be a directory URL or one of: {names}")
    return value


def trust(ca_bundle: Path | None) -> ssl.SSLContext | bool:
    """The TLS trust for talking to the CA: a private bundle, or the system's."""
    if ca_bundle is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as err:
        raise AcmeClientError(f"cannot use {ca_bundle} as CA bundle: {err}") from err


def jwk_of(key: PrivateKey) -> AnyKey:
    """The JOSE view of a private key kept on disk as PEM."""
    pem = private_key_pem(key)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return jwk.ECKey.import_key(pem)
    if isinstance(key, rsa.RSAPrivateKey):
        return jwk.RSAKey.import_key(pem)
    return jwk.OKPKey.import_key(pem)


def parse_identifiers(names: list[str]) -> list[Identifier]:
    """`-d` values: IP addresses become "ip" identifiers (RFC 8738), the rest DNS names."""
    identifiers = []
    for name in names:
        try:
            ipaddress.ip_address(name)
        except ValueError:
            identifiers.append(Identifier("dns", normalise_dns_name(name.strip().rstrip("."))))
        else:
            identifiers.append(Identifier("ip", normalise_ip(name)))
    return identifiers


def certificate_name(identifiers: list[Identifier]) -> str:
    first = identifiers[0].value
    return first[2:] if first.startswith("*.") else first


@dataclass
class AccountOptions:
    email: str | None = None
    agree_tos: bool = False
    eab_kid: str | None = None
    eab_hmac_key: str | None = None
    key_type: str = "ec256"


async def open_session(
    store: Store,
    server: str,
    verify: ssl.SSLContext | bool,
    options: AccountOptions | None,
    ca_bundle: str | None = None,
) -> AcmeSession:
    """A session with the stored account for `server`; with `options`, one is made if none
    is stored. The key is saved before registering, so a crash never loses an account."""
    loaded = store.load_account(server)
    if loaded is not None:
        key, meta = loaded
        session = AcmeSession(server, jwk_of(key), verify=verify, kid=meta.get("kid"))
        if session.kid is None:
            await account.register(session, only_existing=True)
            store.save_account_meta(server, {"kid": session.kid, "directory": server})
        return session
    if options is None:
        raise AcmeClientError(f"no account for {server} in {store.root}; run `account register`")
    key = generate_private_key(options.key_type)
    store.save_account_key(server, key)
    session = AcmeSession(server, jwk_of(key), verify=verify)
    meta = (await session.directory()).get("meta", {})
    if meta.get("termsOfService") and not options.agree_tos:
        await session.close()
        store.forget_account(server)
        raise AcmeClientError(
            f"the CA's terms are at {meta['termsOfService']}; pass --agree-tos to accept them"
        )
    eab = None
    if options.eab_kid and options.eab_hmac_key:
        eab = (options.eab_kid, options.eab_hmac_key)
    elif meta.get("externalAccountRequired"):
        await session.close()
        store.forget_account(server)
        raise AcmeClientError("the CA requires External Account Binding: --eab-kid/--eab-hmac-key")
    contact = [f"mailto:{options.email}"] if options.email else None
    body = await account.register(session, contact=contact, agree_tos=options.agree_tos, eab=eab)
    stored = {"kid": session.kid, "directory": server, "account": body}
    if ca_bundle is not None:
        stored["ca_bundle"] = ca_bundle  # an absolute path; later commands trust it again
    store.save_account_meta(server, stored)
    return session


def hook_environment(name: str, directory: Path, identifiers: list[Identifier]) -> dict[str, str]:
    """What a deploy hook learns about the certificate it deploys."""
    return {
        **os.environ,
        "CERTSMITH_CERT_NAME": name,
        "CERTSMITH_LIVE_DIR": str(directory),
        "CERTSMITH_CERT": str(directory / "cert.pem"),
        "CERTSMITH_CHAIN": str(directory / "chain.pem"),
        "CERTSMITH_FULLCHAIN": str(directory / "fullchain.pem"),
        "CERTSMITH_PRIVKEY": str(directory / "privkey.pem"),
        "CERTSMITH_DOMAINS": " ".join(i.value for i in identifiers),
    }


def describe(error: BaseException) -> str:
    """A one-line message for an expected failure; never a traceback."""
    from certsmith.acme.problems import AcmeProblem, ProblemType

    if isinstance(error, AcmeProblem):
        hint = ""
        if error.type is ProblemType.RATE_LIMITED:
            hint = " (rate limited: try again later)"
        subs = "; ".join(
            f"{(s.identifier or {}).get('value', '?')}: {s.detail}" for s in error.subproblems
        )
        return f"the CA refused: {error.type.code}: {error.detail}{hint}" + (
            f" [{subs}]" if subs else ""
        )
    return str(error)
