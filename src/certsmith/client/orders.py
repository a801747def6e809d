"""Orders, authorizations, finalize, download and revocation (RFC 8555 §7.4 to §7.6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certsmith.acme.identifiers import Identifier
from certsmith.acme.jose import AnyKey, b64url_encode
from certsmith.acme.problems import AcmeProblem
from certsmith.client.session import AcmeClientError, AcmeSession

_ALTERNATE = re.compile(r'<([^>]+)>\s*;\s*rel="?alternate"?')


@dataclass
class Order:
    url: str
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body.get("status"))


class OrderFailed(AcmeClientError):
    """The order ended invalid; `problem` is the CA's reason when it gave one."""

    def __init__(self, message: str, problem: AcmeProblem | None) -> None:
        super().__init__(message)
        self.problem = problem


async def new_order(
    session: AcmeSession,
    identifiers: list[Identifier],
    profile: str | None = None,
    replaces: str | None = None,
) -> Order:
    """Place an order; `profile` is sent only when the CA's directory lists it, `replaces`
    (the ARI id of the certificate being renewed, RFC 9773 §5) only when it offers ARI."""
    payload: dict[str, Any] = {"identifiers": [i.to_dict() for i in identifiers]}
    if replaces is not None and "renewalInfo" in await session.directory():
        payload["replaces"] = replaces
    if profile is not None:
        offered = (await session.directory()).get("meta", {}).get("profiles", {})
        if profile not in offered:
            raise AcmeClientError(
                f"the CA offers no profile {profile!r}; it offers {sorted(offered) or 'none'}"
            )
        payload["profile"] = profile
    response = await session.post(await session.url("newOrder"), payload)
    location = response.headers.get("Location")
    if not location:
        raise AcmeClientError("the CA's newOrder answer has no Location")
    return Order(location, dict(response.json()))


async def wait_until_ready(session: AcmeSession, order: Order, max_wait: float) -> Order:
    body = await session.poll(
        order.url, lambda b: b.get("status") not in ("pending",), max_wait=max_wait
    )
    order.body = body
    if order.status != "ready" and order.status != "valid":
        raise _failed(order)
    return order


def _failed(order: Order) -> OrderFailed:
    error = order.body.get("error")
    problem = AcmeProblem.from_dict(error) if isinstance(error, dict) else None
    detail = f": {problem.detail}" if problem else ""
    return OrderFailed(f"order {order.url} is {order.status}{detail}", problem)


async def finalize(
    session: AcmeSession, order: Order, csr: x509.CertificateSigningRequest, max_wait: float
) -> Order:
    """Send the CSR and wait until the certificate is ready (RFC 8555 §7.4)."""
    der = csr.public_bytes(Encoding.DER)
    response = await session.post(order.body["finalize"], {"csr": b64url_encode(der)})
    order.body = dict(response.json())
    if order.status not in ("valid", "invalid"):
        order.body = await session.poll(
            order.url,
            lambda b: b.get("status") in ("valid", "invalid"),
            max_wait=max_wait,
        )
    if order.status != "valid":
        raise _failed(order)
    return order


async def download(
    session: AcmeSession, certificate_url: str, preferred_issuer: str | None = None
) -> str:
    """The PEM chain; with `preferred_issuer`, the first chain (default or alternate) whose
    topmost certificate is issued by a CA whose common name matches it."""
    response = await session.post(certificate_url, None)
    chain = response.text
    if preferred_issuer is None or _top_issuer(chain) == preferred_issuer:
        return chain
    for url in _ALTERNATE.findall(response.headers.get("Link", "")):
        alternate = (await session.post(url, None)).text
        if _top_issuer(alternate) == preferred_issuer:
            return alternate
    return chain


def _top_issuer(chain_pem: str) -> str | None:
    certificates = x509.load_pem_x509_certificates(chain_pem.encode())
    names = certificates[-1].issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


async def revoke(
    session: AcmeSession,
    certificate: x509.Certificate,
    reason: int | None = None,
    certificate_key: AnyKey | None = None,
) -> None:
    """Revoke with the account key, or with the certificate's own key (RFC 8555 §7.6)."""
    payload: dict[str, Any] = {"certificate": b64url_encode(certificate.public_bytes(Encoding.DER))}
    if reason is not None:
        payload["reason"] = reason
    url = await session.url("revokeCert")
    if certificate_key is not None:
        await session.post(url, payload, key=certificate_key, use_jwk=True)
    else:
        await session.post(url, payload)
