"""The web front end's core (RFC 8555 §6): JWS and nonce checks, headers, problems.

This is the only module that turns failures into problem documents; the handlers in
`app.py` raise `AcmeProblem` and let `endpoint` render it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from certsmith.acme.jose import AnyKey, ParsedJws, import_public_jwk, parse_jws, verify_jws
from certsmith.acme.problems import AcmeProblem, ProblemType, malformed, unauthorized
from certsmith.server.clock import Clock, SystemClock
from certsmith.server.config import ServerConfig
from certsmith.server.finalization import Finalizer
from certsmith.server.issuance.ca import CertificateAuthority
from certsmith.server.nonces import NonceService
from certsmith.server.registration import RegistrationAuthority
from certsmith.server.resources import (
    Urls,
)
from certsmith.server.revocation import Revoker
from certsmith.server.storage import Store, Tx
from certsmith.server.storage.models import AccountRow
from certsmith.server.validation.authority import ValidationAuthority

_log = logging.getLogger(__name__)
_JOSE = "application/jose+json"
_MAX_BODY = 64 * 1024
_BODY_SECONDS = 10

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Signed:
    """A POST whose JWS, nonce and signature checked out."""

    jws: ParsedJws
    key: AnyKey
    account: AccountRow | None

    @property
    def payload(self) -> dict[str, Any]:
        return self.jws.json_payload()

    @property
    def caller(self) -> AccountRow:
        assert self.account is not None
        return self.account


class FrontEnd:
    """Holds the server's parts for the request handlers."""

    def __init__(self, config: ServerConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.store = Store(config.database)
        self.ca = CertificateAuthority.load_or_create(config.data_dir, self.clock)
        self._va = ValidationAuthority(config)
        self.nonces: NonceService
        self.ra: RegistrationAuthority
        self.revoker: Revoker
        self.finalizer: Finalizer

    async def start(self) -> None:
        await self.store.migrate()
        self.nonces = await NonceService.create(self.store, self.config.nonce_lifetime, self.clock)
        self.ra = RegistrationAuthority(self.store, self.config, self.clock, self.ca, self._va)
        self.revoker = Revoker(self.store, self.clock)
        self.finalizer = Finalizer(self.store, self.config, self.clock, self.ca)
        await self.finalizer.fail_interrupted_issuance()
        await self.ra.resume_validations()

    async def stop(self) -> None:
        await self.ra.close()
        await self.store.close()

    # --- responses ---

    def headers(self, request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Headers every ACME response carries; an extra Link is added to the index one."""
        index = f'<{urls_for(request).directory}>;rel="index"'
        headers = {"Replay-Nonce": self.nonces.issue(), "Link": index, "Cache-Control": "no-store"}
        if extra:
            link = extra.get("Link")
            headers.update(extra)
            if link is not None and index not in link:
                headers["Link"] = f"{index}, {link}"
        return headers

    def json(
        self,
        request: Request,
        body: dict[str, Any],
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        return JSONResponse(body, status, headers=self.headers(request, headers))

    def problem(self, request: Request, problem: AcmeProblem) -> Response:
        headers = self.headers(request, problem.headers)
        return Response(
            json.dumps(problem.to_dict()),
            problem.http_status,
            headers=headers,
            media_type="application/problem+json",
        )

    # --- request authentication (RFC 8555 §6.2 to §6.5) ---

    async def signed(
        self,
        request: Request,
        *,
        use_jwk: bool = False,
        jwk_or_kid: bool = False,
        outdated_terms_ok: bool = False,
    ) -> Signed:
        """Check a POST's content type, JWS, URL, key, signature and nonce, in that order.

        `use_jwk` demands a `jwk` header (newAccount); `jwk_or_kid` takes either (revokeCert).
        """
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != _JOSE:
            raise AcmeProblem(ProblemType.MALFORMED, f"Content-Type must be {_JOSE}", status=415)
        parsed = parse_jws(await _read_body(request))
        if parsed.url != str(request.url):
            raise unauthorized("JWS 'url' header does not match the request URL")
        account: AccountRow | None = None
        if jwk_or_kid:
            use_jwk = parsed.jwk is not None
        if use_jwk and parsed.jwk is None:
            raise malformed("this request must be signed with a 'jwk' header, not 'kid'")
        if not use_jwk and parsed.kid is None:
            raise malformed("this request must be signed with a 'kid' header, not 'jwk'")
        # One transaction for the account lookup and the nonce: a request that fails its
        # signature rolls back and burns nothing.
        async with self.store.transaction() as tx:
            if parsed.kid is not None and not use_jwk:
                account = await self._account_for_kid(tx, request, parsed.kid)
                key = import_public_jwk(account.jwk)
            else:
                key = import_public_jwk(parsed.jwk)
            verify_jws(parsed, key)
            await self.nonces.redeem_in(tx, parsed.nonce)
        if account is not None and not outdated_terms_ok:
            self._check_terms(request, account)
        return Signed(parsed, key, account)

    def terms_url(self, request: Request) -> str:
        """The configured terms of service, or the built-in page at /terms."""
        return self.config.terms_of_service or f"{urls_for(request).base}/terms"

    def _check_terms(self, request: Request, account: AccountRow) -> None:
        """RFC 8555 §7.3.3: after the terms change, the account must agree again first."""
        if account.terms_version in (None, self.config.terms_version):
            return
        terms = self.terms_url(request)
        raise AcmeProblem(
            ProblemType.USER_ACTION_REQUIRED,
            "the terms of service have changed; agree to them by updating the account "
            "with termsOfServiceAgreed",
            headers={"Link": f'<{terms}>;rel="terms-of-service"'},
            extra={"instance": terms},
        )

    async def _account_for_kid(self, tx: Tx, request: Request, kid: str) -> AccountRow:
        prefix = urls_for(request).account_prefix
        account_id = kid[len(prefix) :] if kid.startswith(prefix) else ""
        if not account_id or "/" in account_id:
            raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "'kid' is not an account URL")
        account = await tx.get(AccountRow, account_id)
        if account is None:
            raise AcmeProblem(ProblemType.ACCOUNT_DOES_NOT_EXIST, "no account with this 'kid'")
        if account.status != "valid":
            raise unauthorized(f"account is {account.status}")
        return account


def urls_for(request: Request) -> Urls:
    return Urls(f"{request.url.scheme}://{request.url.netloc}")


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > _MAX_BODY):
        raise malformed(f"request body must be at most {_MAX_BODY} bytes")
    body = bytearray()
    try:
        # A client that sends less than its Content-Length must not hold a slot for long.
        async with asyncio.timeout(_BODY_SECONDS):
            async for chunk in request.stream():
                body += chunk
                if len(body) > _MAX_BODY:
                    raise malformed(f"request body must be at most {_MAX_BODY} bytes")
    except TimeoutError as err:
        raise malformed(f"request body not received within {_BODY_SECONDS}s") from err
    return bytes(body)


def require_post_as_get(signed: Signed) -> None:
    if not signed.jws.is_post_as_get:
        raise malformed("this resource is read with POST-as-GET (an empty payload)")


def endpoint(handler: Callable[[FrontEnd, Request], Awaitable[Response]]) -> Handler:
    """Wrap a handler so every failure becomes a problem document, never a traceback."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        front: FrontEnd = request.app.state.front
        try:
            return await handler(front, request)
        except AcmeProblem as problem:
            return front.problem(request, problem)
        except ClientDisconnect:
            # The client went away mid-body; there is nobody to answer and nothing to log.
            return Response(status_code=400)
        except Exception:
            _log.exception("unhandled error serving %s %s", request.method, request.url.path)
            return front.problem(
                request, AcmeProblem(ProblemType.SERVER_INTERNAL, "internal server error")
            )

    return wrapped
