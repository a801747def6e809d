"""A small real HTTP server for ARI tests: an ACME directory and renewalInfo answers.

It serves `/directory` and `/renewalInfo/<id>` on loopback, in a thread. The directory can
carry another CA's URLs (newNonce, newAccount, newOrder, ...), so a client that uses this
directory orders from that CA and asks this server for renewal information. Tests say what
each certificate id gets back, and read which requests arrived.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def rfc3339(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass
class Answer:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


def window_answer(
    start: datetime,
    end: datetime,
    retry_after: str | None = "21600",
    explanation_url: str | None = None,
) -> Answer:
    body: dict[str, Any] = {"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}
    if explanation_url:
        body["explanationURL"] = explanation_url
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Answer(200, body, headers)


class AriResponder:
    """`with AriResponder.running() as ari:` then `ari.directory` is the URL to use."""

    def __init__(self, upstream: dict[str, Any] | None = None, *, offer_ari: bool = True) -> None:
        self.upstream = dict(upstream or {})
        self.offer_ari = offer_ari
        self.answers: dict[str, Answer] = {}
        self.default = Answer(404, {"type": "urn:ietf:params:acme:error:malformed"})
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def directory(self) -> str:
        return f"{self.base}/directory"

    @property
    def renewal_info(self) -> str:
        return f"{self.base}/renewalInfo"

    def answer(self, cert_id: str, answer: Answer) -> None:
        with self._lock:
            self.answers[cert_id] = answer

    def asked(self, cert_id: str | None = None) -> list[tuple[str, str]]:
        """The (method, path) of requests for renewalInfo (for one id, if given)."""
        with self._lock:
            prefix = "/renewalInfo/" + (cert_id or "")
            return [(m, p) for m, p in self.requests if p.startswith(prefix)]

    @classmethod
    @contextmanager
    def running(
        cls, upstream: dict[str, Any] | None = None, *, offer_ari: bool = True
    ) -> Iterator[AriResponder]:
        responder = cls(upstream, offer_ari=offer_ari)
        responder._thread.start()
        try:
            yield responder
        finally:
            responder._server.shutdown()
            responder._server.server_close()
            responder._thread.join(5)

    def _directory_body(self) -> dict[str, Any]:
        body = {"newNonce": f"{self.base}/nonce", **self.upstream}
        body.pop("renewalInfo", None)
        if self.offer_ari:
            body["renewalInfo"] = self.renewal_info
        return body

    def _reply(self, method: str, path: str) -> Answer:
        with self._lock:
            self.requests.append((method, path))
            if path == "/directory" and method == "GET":
                return Answer(200, self._directory_body())
            prefix = "/renewalInfo/"
            if path.startswith(prefix) and method == "GET":
                return self.answers.get(path[len(prefix) :], self.default)
            if path.startswith(prefix):
                return Answer(405, {"detail": "renewalInfo is fetched with GET"})
            return Answer(404, {"detail": "not here"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        responder = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer = responder._reply(self.command, self.path)
                body = answer.body
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = _serve
            do_POST = _serve
            do_HEAD = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler
