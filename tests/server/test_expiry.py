"""Expiry (RFC 8555 §7.1.6) with a clock the test controls, through the ASGI app in-process."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from certsmith.acme.jose import sign_jws
from certsmith.server.app import create_app
from certsmith.server.clock import FakeClock
from certsmith.server.config import ServerConfig
from tests.acmetest import new_key


class InProcess:
    def __init__(self, client: httpx.AsyncClient, directory: dict[str, Any]) -> None:
        self.client = client
        self.key = new_key()
        self.kid: str | None = None
        self.directory = directory

    async def post(self, url: str, payload: dict[str, Any] | None, *, jwk: bool = False) -> Any:
        nonce = (await self.client.head(self.directory["newNonce"])).headers["Replay-Nonce"]
        body = sign_jws(payload, self.key, url=url, nonce=nonce, kid=None if jwk else self.kid)
        return await self.client.post(
            url, json=body, headers={"Content-Type": "application/jose+json"}
        )


async def test_expired_authorization_and_order_read_as_such(tmp_path: Path) -> None:
    clock = FakeClock()
    app = create_app(ServerConfig(data_dir=tmp_path, plain_http=True), clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://ca.test") as client,
    ):
        acme = InProcess(client, (await client.get("/directory")).json())
        created = await acme.post(
            acme.directory["newAccount"], {"termsOfServiceAgreed": True}, jwk=True
        )
        acme.kid = created.headers["Location"]
        order = await acme.post(
            acme.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "old.test"}]}
        )
        order_url, authz_url = order.headers["Location"], order.json()["authorizations"][0]
        assert (await acme.post(authz_url, None)).json()["status"] == "pending"

        clock.advance(timedelta(days=8))
        authz = (await acme.post(authz_url, None)).json()
        assert authz["status"] == "expired"
        challenge = await acme.post(authz["challenges"][0]["url"], None)
        assert challenge.status_code == 200
        assert (await acme.post(order_url, None)).json()["status"] == "invalid"
        # Answering a challenge of an expired authorization is refused and starts nothing.
        refused = await acme.post(authz["challenges"][0]["url"], {})
        assert refused.status_code == 400
        assert refused.json()["type"] == "urn:ietf:params:acme:error:malformed"
