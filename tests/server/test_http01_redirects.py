"""http-01 through redirects, as Let's Encrypt follows them (at most 10, usual ports)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.acmetest import Acme
from tests.support import CaServer


class RedirectingResponder:
    """Serves key authorizations under /moved/ and redirects challenge paths per `mode`."""

    def __init__(self, port: int, mode: str) -> None:
        self.tokens: dict[str, str] = {}
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/moved/") and token in responder.tokens:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(responder.tokens[token].encode())
                    return
                location = {
                    "relative": f"/moved/{token}",
                    "bad-port": f"http://{self.headers['Host'].split(':')[0]}:1/moved/{token}",
                    "ftp": f"ftp://example.test/{token}",
                    "loop": self.path,
                }[mode]
                self.send_response(302)
                self.send_header("Location", location)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RedirectingResponder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def acme(ca_server: CaServer) -> Iterator[Acme]:
    client = Acme(ca_server.directory, ca_server.root)
    client.register()
    yield client
    client.close()


@pytest.mark.parametrize(
    ("mode", "status", "detail"),
    [
        pytest.param("relative", "valid", None, id="relative-same-port"),
        pytest.param("bad-port", "invalid", "refused", id="other-port"),
        pytest.param("ftp", "invalid", "refused", id="not-http"),
        pytest.param("loop", "invalid", "more than 10 redirects", id="loop"),
    ],
)
def test_http01_redirects(
    ca_server: CaServer, acme: Acme, mode: str, status: str, detail: str | None
) -> None:
    response = acme.new_order(f"redirect-{mode}.test")
    order = {**response.json(), "url": response.headers["Location"]}
    authz = acme.get(order["authorizations"][0]).json()
    challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
    with RedirectingResponder(ca_server.http01_port, mode) as responder:
        responder.tokens[challenge["token"]] = acme.key_authorization(challenge["token"])
        acme.post(challenge["url"], {})
        done = acme.poll(
            challenge["url"], until=lambda c: c["status"] not in ("pending", "processing")
        )
    assert done["status"] == status, done
    if detail is not None:
        assert done["error"]["type"] == "urn:ietf:params:acme:error:unauthorized"
        assert detail in done["error"]["detail"]
    else:
        assert done["validationRecord"][0]["redirects"][0].endswith(f"/moved/{challenge['token']}")
