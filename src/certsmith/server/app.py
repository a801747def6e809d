"""The ACME HTTP endpoints (RFC 8555 §7) and the ASGI application that routes to them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from certsmith.acme.jose import import_public_jwk, parse_jws, thumbprint, verify_jws
from certsmith.acme.problems import (
    AcmeProblem,
    ProblemType,
    conflict,
    malformed,
    not_found,
    unauthorized,
)
from certsmith.server.clock import Clock
from certsmith.server.config import ServerConfig
from certsmith.server.frontend import FrontEnd, endpoint, require_post_as_get, urls_for
from certsmith.server.lifecycle import OrderView
from certsmith.server.resources import (
    account_json,
    authorization_json,
    challenge_json,
    order_json,
)

_ORDERS_PAGE = 50
_TERMS = (
    "certsmith terms of service\n\n"
    "Certificates from this CA are for testing and private use. The operator may revoke\n"
    "any certificate at any time. Do not rely on them where a public CA is expected.\n"
)


@endpoint
async def directory(front: FrontEnd, request: Request) -> Response:
    urls = urls_for(request)
    meta: dict[str, object] = {
        "termsOfService": front.terms_url(request),
        "website": front.config.website or f"{urls.base}/",
        "caaIdentities": list(front.config.caa_identities),
        "externalAccountRequired": front.config.eab_required,
    }
    body = {
        "newNonce": urls.new_nonce,
        "newAccount": urls.new_account,
        "newOrder": urls.new_order,
        "revokeCert": urls.revoke_cert,
        "keyChange": urls.key_change,
        "meta": meta,
    }
    return front.json(request, body)


@endpoint
async def new_nonce(front: FrontEnd, request: Request) -> Response:
    # RFC 8555 §7.2: 200 for HEAD, 204 for GET, never cached.
    status = 200 if request.method == "HEAD" else 204
    return Response(status_code=status, headers=front.headers(request))


@endpoint
async def new_account(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request, use_jwk=True)
    urls = urls_for(request)
    account, created = await front.ra.new_account(signed.key, signed.payload, urls.new_account)
    return front.json(
        request,
        account_json(urls, account),
        201 if created else 200,
        {"Location": urls.account(account.id)},
    )


@endpoint
async def account(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request, outdated_terms_ok=True)
    if signed.caller.id != request.path_params["account_id"]:
        raise unauthorized("the 'kid' does not name this account")
    row = signed.caller
    if not signed.jws.is_post_as_get:
        row = await front.ra.update_account(row, signed.payload)
    return front.json(request, account_json(urls_for(request), row))


@endpoint
async def key_change(front: FrontEnd, request: Request) -> Response:
    """Account key rollover with a JWS nested in a JWS (RFC 8555 §7.3.5)."""
    signed = await front.signed(request)
    inner = parse_jws(signed.jws.payload, require_nonce=False)
    if "nonce" in inner.protected:
        raise malformed("the inner JWS of keyChange must not carry a nonce")
    if inner.jwk is None:
        raise malformed("the inner JWS of keyChange must carry the new key as 'jwk'")
    if inner.url != signed.jws.url:
        raise malformed("inner and outer JWS of keyChange must have the same 'url'")
    new_key = import_public_jwk(inner.jwk)
    verify_jws(inner, new_key)
    change = inner.json_payload()
    if change.get("account") != signed.jws.kid:
        raise unauthorized("keyChange 'account' must be the URL of the signing account")
    old_key = import_public_jwk(change.get("oldKey"))
    if thumbprint(old_key) != signed.caller.key_thumbprint:
        raise unauthorized("keyChange 'oldKey' is not the account's current key")
    urls = urls_for(request)
    holder = await front.ra.account_by_key(new_key)
    if holder is not None:
        raise conflict("the new key is already in use by an account", urls.account(holder.id))
    row = await front.ra.change_key(signed.caller, new_key)
    return front.json(request, account_json(urls, row))


@endpoint
async def revoke_cert(front: FrontEnd, request: Request) -> Response:
    """Revocation by an account or by the certificate's key (RFC 8555 §7.6)."""
    signed = await front.signed(request, jwk_or_kid=True)
    await front.revoker.revoke(signed.payload, account=signed.account, key=signed.key)
    return Response(status_code=200, headers=front.headers(request))


@endpoint
async def orders(front: FrontEnd, request: Request) -> Response:
    """The account's orders list (RFC 8555 §7.1.2.1), paginated with Link rel="next"."""
    signed = await front.signed(request)
    require_post_as_get(signed)
    if signed.caller.id != request.path_params["account_id"]:
        raise unauthorized("the 'kid' does not name this account")
    after = request.query_params.get("cursor")
    ids = await front.ra.orders_of_account(signed.caller, after, _ORDERS_PAGE + 1)
    urls = urls_for(request)
    headers = {}
    if len(ids) > _ORDERS_PAGE:
        ids = ids[:_ORDERS_PAGE]
        next_url = f"{urls.orders(signed.caller.id)}?cursor={ids[-1]}"
        headers["Link"] = f'<{next_url}>;rel="next"'
    return front.json(request, {"orders": [urls.order(i) for i in ids]}, headers=headers)


@endpoint
async def new_order(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request)
    view = await front.ra.new_order(signed.caller, signed.payload)
    urls = urls_for(request)
    return front.json(request, order_json(urls, view), 201, {"Location": urls.order(view.order.id)})


@endpoint
async def order(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request)
    require_post_as_get(signed)
    view = await front.ra.order(signed.caller, request.path_params["order_id"])
    return _order_response(front, request, view)


def _order_response(front: FrontEnd, request: Request, view: OrderView) -> Response:
    urls = urls_for(request)
    headers = {"Location": urls.order(view.order.id)}
    if view.order.status == "processing":
        headers["Retry-After"] = "1"
    return front.json(request, order_json(urls, view), headers=headers)


@endpoint
async def finalize(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request)
    view = await front.finalizer.finalize(
        signed.caller, request.path_params["order_id"], signed.payload
    )
    return _order_response(front, request, view)


@endpoint
async def authorization(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request)
    authz_id = request.path_params["authz_id"]
    if signed.jws.is_post_as_get:
        view = await front.ra.authorization(signed.caller, authz_id)
    elif signed.payload.get("status") != "deactivated":
        # RFC 8555 §7.5.2 asks only for the status; clients such as lego send more fields.
        raise malformed('an authorization accepts only {"status": "deactivated"}')
    else:
        view = await front.ra.deactivate_authorization(signed.caller, authz_id)
    # RFC 8555 §8.2: tell pollers when a validation in progress is worth asking about again.
    busy = any(c.status == "processing" for c in view.challenges)
    headers = {"Retry-After": "1"} if busy else None
    return front.json(request, authorization_json(urls_for(request), view), headers=headers)


@endpoint
async def challenge(front: FrontEnd, request: Request) -> Response:
    signed = await front.signed(request)
    challenge_id = request.path_params["challenge_id"]
    if signed.jws.is_post_as_get:
        row, authz = await front.ra.challenge(signed.caller, challenge_id)
    else:
        signed.payload  # noqa: B018 -- RFC 8555 §7.5.1: the response must be a JSON object
        row, authz = await front.ra.respond_to_challenge(signed.caller, challenge_id)
    urls = urls_for(request)
    up = f'<{urls.authorization(authz.id)}>;rel="up"'
    headers = {"Link": up}
    if row.status == "processing":
        headers["Retry-After"] = "1"
    return front.json(request, challenge_json(urls, row), headers=headers)


@endpoint
async def certificate(front: FrontEnd, request: Request) -> Response:
    """The chain, or alternate chain N; each names the others with rel="alternate"."""
    signed = await front.signed(request)
    require_post_as_get(signed)
    certificate_id = request.path_params["certificate_id"]
    row = await front.finalizer.certificate(signed.caller, certificate_id)
    chains = [row.chain_pem, *front.ca.alternate_chains(row.chain_pem)]
    index_text = request.path_params.get("index", "0")
    if not (index_text.isdigit() and len(index_text) <= 3 and int(index_text) < len(chains)):
        raise not_found("no such alternate chain")
    index = int(index_text)
    urls = urls_for(request)
    links = [
        f'<{urls.certificate(certificate_id, i)}>;rel="alternate"'
        for i in range(len(chains))
        if i != index
    ]
    return Response(
        chains[index],
        200,
        headers=front.headers(request, {"Link": ", ".join(links)} if links else None),
        media_type="application/pem-certificate-chain",
    )


async def terms(request: Request) -> Response:
    return PlainTextResponse(_TERMS)


async def index(request: Request) -> Response:
    return PlainTextResponse(f"certsmith ACME CA\ndirectory: {urls_for(request).directory}\n")


async def _http_error(request: Request, exc: Exception) -> Response:
    front: FrontEnd = request.app.state.front
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        problem = AcmeProblem(
            ProblemType.MALFORMED,
            f"method {request.method} is not allowed here",
            status=405,
            headers=dict(exc.headers or {}),  # Allow (RFC 9110 §15.5.6)
        )
        return front.problem(request, problem)
    return front.problem(request, not_found(f"no resource at {request.url.path}"))


def create_app(config: ServerConfig, clock: Clock | None = None) -> Starlette:
    front = FrontEnd(config, clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await front.start()
        try:
            yield
        finally:
            await front.stop()

    post = ["POST"]
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/terms", terms, methods=["GET"]),
        Route("/directory", directory, methods=["GET"]),
        Route("/acme/new-nonce", new_nonce, methods=["GET", "HEAD"]),
        Route("/acme/new-account", new_account, methods=post),
        Route("/acme/new-order", new_order, methods=post),
        Route("/acme/revoke-cert", revoke_cert, methods=post),
        Route("/acme/key-change", key_change, methods=post),
        Route("/acme/acct/{account_id}", account, methods=post),
        Route("/acme/acct/{account_id}/orders", orders, methods=post),
        Route("/acme/order/{order_id}", order, methods=post),
        Route("/acme/order/{order_id}/finalize", finalize, methods=post),
        Route("/acme/authz/{authz_id}", authorization, methods=post),
        Route("/acme/chall/{challenge_id}", challenge, methods=post),
        Route("/acme/cert/{certificate_id}", certificate, methods=post),
        Route("/acme/cert/{certificate_id}/{index}", certificate, methods=post),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    # "/acme/acct/ID/" is not an ACME URL: answer 404, not a redirect without a nonce.
    app.router.redirect_slashes = False
    app.state.front = front
    return app
