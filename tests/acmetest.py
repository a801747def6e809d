"""A small synchronous ACME driver for tests: signs with our JOSE core, checks nothing.

It exists to send both good and deliberately bad requests; the product's own client is
`certsmith.client`.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwk

from certsmith.acme.jose import AnyKey, b64url_encode, key_authorization, sign_jws
from tests.support import trust


def new_key(kind: str = "EC", crv: str = "P-256") -> AnyKey:
    if kind == "RSA":
        return jwk.RSAKey.generate_key(2048)
    return jwk.generate_key(kind, crv)  # type: ignore[return-value]


@dataclass
class Acme:
    directory_url: str
    root: Path
    key: AnyKey = field(default_factory=new_key)
    kid: str | None = None

    def __post_init__(self) -> None:
        self.http = httpx.Client(verify=trust(self.root), timeout=15)
        self.directory: dict[str, Any] = self.http.get(self.directory_url).json()

    def close(self) -> None:
        self.http.close()

    def nonce(self) -> str:
        return self.http.head(self.directory["newNonce"]).headers["Replay-Nonce"]

    def post(
        self,
        url: str,
        payload: dict[str, Any] | bytes | None,
        *,
        key: AnyKey | None = None,
        kid: str | None = None,
        use_jwk: bool = False,
        nonce: str | None = None,
        content_type: str = "application/jose+json",
        mutate: Callable[[dict[str, str]], Any] | None = None,
    ) -> httpx.Response:
        """Sign and POST; `mutate` may change the signed JWS before it is sent."""
        key = key or self.key
        kid = None if use_jwk else (kid or self.kid)
        body: Any = sign_jws(payload, key, url=url, nonce=nonce or self.nonce(), kid=kid)
        if mutate is not None:
            body = mutate(body)
        raw = body if isinstance(body, bytes) else httpx.Request("POST", url, json=body).content
        return self.http.post(url, content=raw, headers={"Content-Type": content_type})

    def register(self, **payload: Any) -> httpx.Response:
        payload.setdefault("termsOfServiceAgreed", True)
        response = self.post(self.directory["newAccount"], payload, use_jwk=True)
        if response.status_code in (200, 201):
            self.kid = response.headers["Location"]
        return response

    def new_order(self, *names: str) -> httpx.Response:
        identifiers = [{"type": "dns", "value": n} for n in names]
        return self.post(self.directory["newOrder"], {"identifiers": identifiers})

    def get(self, url: str) -> httpx.Response:
        return self.post(url, None)

    def key_authorization(self, token: str) -> str:
        return key_authorization(token, self.key)

    def solve_and_wait(self, order: dict[str, Any], responder: Http01Responder) -> dict[str, Any]:
        """Answer every pending http-01 challenge and poll until the order leaves pending."""
        for authz_url in order["authorizations"]:
            authz = self.get(authz_url).json()
            if authz["status"] != "pending":
                continue
            challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
            responder.tokens[challenge["token"]] = self.key_authorization(challenge["token"])
            self.post(challenge["url"], {})
        return self.poll(order["url"], until=lambda o: o["status"] != "pending")

    def poll(
        self, url: str, until: Callable[[dict[str, Any]], bool], tries: int = 200
    ) -> dict[str, Any]:
        import time

        for _ in range(tries):
            body = self.get(url).json()
            if until(body):
                body["url"] = url
                return body
            time.sleep(0.05)
        raise TimeoutError(f"{url} never reached the wanted state")


def csr_b64(key: Any, names: list[str]) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    from certsmith.acme.keys import build_csr

    return b64url_encode(build_csr(key, names).public_bytes(Encoding.DER))


class Http01Responder:
    """A real HTTP server on loopback answering /.well-known/acme-challenge/TOKEN."""

    def __init__(self, port: int) -> None:
        self.tokens: dict[str, str] = {}
        tokens = self.tokens

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("/", 1)[-1]
                answer = tokens.get(token)
                self.send_response(200 if answer else 404)
                self.end_headers()
                if answer:
                    self.wfile.write(answer.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Http01Responder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def sign_with_header(protected: dict[str, Any], payload: bytes, key: AnyKey) -> dict[str, str]:
    """A JWS with exactly the protected header given, for requests no client should send."""
    from joserfc import jws
    from joserfc.jws import JWSRegistry

    registry = JWSRegistry(algorithms=[protected["alg"]], strict_check_header=False)
    registry.max_header_length = 8192
    return dict(jws.serialize_json({"protected": protected}, payload, key, registry=registry))


def issue(acme: Acme, http01_port: int, *names: str) -> tuple[bytes, Any]:
    """Run a whole order for `names` and return (PEM chain, certificate private key)."""
    from certsmith.acme.keys import generate_private_key

    response = acme.new_order(*names)
    assert response.status_code == 201, response.text
    order = {**response.json(), "url": response.headers["Location"]}
    with Http01Responder(http01_port) as responder:
        order = acme.solve_and_wait(order, responder)
    assert order["status"] == "ready", order
    key = generate_private_key("ec256")
    finalized = acme.post(order["finalize"], {"csr": csr_b64(key, sorted(names))})
    assert finalized.status_code == 200, finalized.text
    order = acme.poll(order["url"], until=lambda o: o["status"] == "valid")
    return acme.get(order["certificate"]).content, key


class TlsAlpnResponder:
    """A real TLS server on loopback answering acme-tls/1 with per-SNI challenge certificates
    (RFC 8737 §3); `add(identifier_type, value, key_authorization)` arms one name."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        import socket
        import ssl

        self.contexts: dict[str, ssl.SSLContext] = {}
        self._default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._default.set_alpn_protocols(["acme-tls/1"])
        self._default.sni_callback = self._pick
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def add(self, identifier_type: str, value: str, key_authorization: str) -> None:
        import ipaddress
        import ssl
        import tempfile

        from cryptography.hazmat.primitives.serialization import Encoding

        from certsmith.acme.challenges import tlsalpn01_certificate
        from certsmith.acme.keys import private_key_pem

        cert, key = tlsalpn01_certificate(identifier_type, value, key_authorization)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_alpn_protocols(["acme-tls/1"])
        with tempfile.NamedTemporaryFile("wb", suffix=".pem") as pem:
            pem.write(private_key_pem(key) + cert.public_bytes(Encoding.PEM))
            pem.flush()
            context.load_cert_chain(pem.name)
        sni = value if identifier_type == "dns" else ipaddress.ip_address(value).reverse_pointer
        self.contexts[sni] = context

    def _pick(self, sock: Any, name: str | None, _ctx: Any) -> None:
        if name in self.contexts:
            sock.context = self.contexts[name]

    def _serve(self) -> None:
        import ssl

        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self._default.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                conn.close()

    def __enter__(self) -> TlsAlpnResponder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()
