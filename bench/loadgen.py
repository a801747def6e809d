"""Load generator: N full ACME (RFC 8555) issuance flows at concurrency C against a directory.

Each flow: newNonce, newAccount (or an account from a pool), newOrder for one random DNS
name, fetch the authorization, answer http-01 from an in-process responder, poll the
authorization and the order, finalize with a fresh P-256 CSR, poll, download the chain.
Signing uses certsmith's own JOSE core; every flow's wall time is recorded.

Standalone use (the CA must resolve the names to the responder's address):

    python bench/loadgen.py https://127.0.0.1:14000/directory --cafile data/root.pem \\
        --http01-port 5002 --count 50 --concurrency 4
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import ssl
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jwk

from certsmith.acme.jose import AnyKey, b64url_encode, key_authorization, sign_jws
from certsmith.acme.keys import build_csr, generate_private_key

BAD_NONCE = "urn:ietf:params:acme:error:badNonce"
_JOSE = {"Content-Type": "application/jose+json"}
_CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
_MAX_BAD_NONCE_RETRIES = 10
_MAX_HEADER_BYTES = 16 * 1024


class FlowError(Exception):
    """A flow could not finish; the message says at which step and why."""


# --- the http-01 responder ---------------------------------------------------------------


class Http01Responder:
    """A minimal asyncio HTTP/1.1 server answering /.well-known/acme-challenge/TOKEN.

    The Host header is ignored: any name the CA validates is answered from one table.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.tokens: dict[str, str] = {}
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and end open connections, letting their handlers return."""
        if self._server is None:
            return
        self._server.close()
        for writer in self._open.values():
            writer.transport.abort()
        await asyncio.gather(*self._open, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open[task] = writer
        try:
            while await self._answer_one(reader, writer):
                pass
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            del self._open[task]
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; True if the connection may carry another."""
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEADER_BYTES:
            return False
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return False
        method, target, version = parts
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            return False  # the VA sends no bodies; do not try to skip one
        path = target.split("?", 1)[0]
        answer = None
        if method in ("GET", "HEAD") and path.startswith(_CHALLENGE_PREFIX):
            answer = self.tokens.get(path[len(_CHALLENGE_PREFIX) :])
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if answer is None:
            status, body = "404 Not Found", b"not found\n"
        else:
            status, body = "200 OK", answer.encode("ascii")
        head_out = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head_out.encode("ascii") + (b"" if method == "HEAD" else body))
        await writer.drain()
        return keep_alive


# --- results -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one batch of flows did."""

    flows: int = 0
    issued: int = 0
    wall_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    polls: int = 0
    bad_nonce_retries: int = 0
    client_cpu_seconds: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        return self.flows - self.issued

    @property
    def orders_per_second(self) -> float:
        return self.issued / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def latency_percentile(self, pct: float) -> float:
        return percentile(self.latencies_ms, pct)

    def summary(self) -> str:
        lines = [
            f"flows {self.flows}, issued {self.issued}, failed {self.failed}",
            f"wall {self.wall_seconds:.2f} s, {self.orders_per_second:.1f} orders/s",
            f"latency p50 {self.latency_percentile(50):.0f} ms, "
            f"p95 {self.latency_percentile(95):.0f} ms",
            f"requests {self.requests} (polls {self.polls}, badNonce retries "
            f"{self.bad_nonce_retries}), loadgen CPU {self.client_cpu_seconds:.2f} s",
        ]
        lines += [f"error x{n}: {msg}" for msg, n in self.errors.most_common(5)]
        return "\n".join(lines)


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile with linear interpolation between ranks; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- one ACME session --------------------------------------------------------------------


@dataclass
class Account:
    key: AnyKey
    kid: str


class Session:
    """One flow's view of the CA: its nonce, its account, and the counters it feeds."""

    def __init__(self, gen: LoadGenerator, result: LoadResult) -> None:
        self.gen = gen
        self.result = result
        self.nonce: str | None = None

    async def new_nonce(self) -> None:
        response = await self.gen.http.head(self.gen.directory["newNonce"])
        self.result.requests += 1
        if response.status_code not in (200, 204) or "Replay-Nonce" not in response.headers:
            raise FlowError(f"newNonce: HTTP {response.status_code}")
        self.nonce = response.headers["Replay-Nonce"]

    async def post(
        self,
        step: str,
        url: str,
        payload: dict[str, Any] | None,
        key: AnyKey,
        kid: str | None,
    ) -> httpx.Response:
        """Sign and POST; on badNonce, sign again with the nonce the error carried."""
        for attempt in range(_MAX_BAD_NONCE_RETRIES + 1):
            if self.nonce is None:
                await self.new_nonce()
            jws = sign_jws(payload, key, url=url, nonce=self.nonce, kid=kid)
            self.nonce = None
            body = json.dumps(jws, separators=(",", ":")).encode()
            response = await self.gen.http.post(url, content=body, headers=_JOSE)
            self.result.requests += 1
            self.nonce = response.headers.get("Replay-Nonce")
            if response.status_code < 400:
                return response
            problem = _problem(response)
            if problem.get("type") == BAD_NONCE and attempt < _MAX_BAD_NONCE_RETRIES:
                self.result.bad_nonce_retries += 1
                continue
            raise FlowError(f"{step}: HTTP {response.status_code} {_describe(problem)}")
        raise AssertionError("unreachable")

    async def get(self, step: str, url: str, account: Account) -> httpx.Response:
        return await self.post(step, url, None, account.key, account.kid)

    async def new_account(self) -> Account:
        key = jwk.ECKey.import_key(generate_private_key("ec256"))  # type: ignore[arg-type]
        payload = {"termsOfServiceAgreed": True, "contact": ["mailto:bench@example.org"]}
        response = await self.post(
            "newAccount", self.gen.directory["newAccount"], payload, key, None
        )
        location = response.headers.get("Location")
        if response.status_code != 201 or not location:
            raise FlowError(f"newAccount: HTTP {response.status_code}, Location {location!r}")
        return Account(key, location)

    async def poll(
        self, step: str, url: str, account: Account, done: frozenset[str]
    ) -> dict[str, Any]:
        """POST-as-GET `url` every poll interval until its status is in `done`."""
        deadline = time.monotonic() + self.gen.timeout
        while True:
            body: dict[str, Any] = (await self.get(step, url, account)).json()
            if body.get("status") in done:
                return body
            if time.monotonic() > deadline:
                raise FlowError(f"{step}: still {body.get('status')!r} after {self.gen.timeout} s")
            self.result.polls += 1
            await asyncio.sleep(self.gen.poll_interval)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe(problem: dict[str, Any]) -> str:
    kind = str(problem.get("type", "?")).rsplit(":", 1)[-1]
    return f"{kind}: {problem.get('detail', '')}"[:200]


# --- the generator -----------------------------------------------------------------------


class LoadGenerator:
    """Runs batches of issuance flows against one directory with one HTTP/1.1 client.

    Use as `async with LoadGenerator(...) as gen: result = await gen.run(count, c)`.
    """

    def __init__(
        self,
        directory_url: str,
        *,
        verify: ssl.SSLContext,
        http01_port: int,
        http01_host: str = "127.0.0.1",
        domain: str = "test",
        account_pool: int = 0,
        poll_interval: float = 0.05,
        timeout: float = 60.0,
    ) -> None:
        self.directory_url = directory_url
        self.verify = verify
        self.responder = Http01Responder(http01_host, http01_port)
        self.domain = domain.strip(".")
        self.account_pool_size = account_pool
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.directory: dict[str, Any] = {}
        self._accounts: list[Account] = []
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "use LoadGenerator inside `async with`"
        return self._http

    async def __aenter__(self) -> LoadGenerator:
        await self.responder.start()
        try:
            self._http = httpx.AsyncClient(
                verify=self.verify,
                http1=True,
                http2=False,
                trust_env=False,
                timeout=self.timeout,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
            )
            response = await self._http.get(self.directory_url)
            response.raise_for_status()
            self.directory = response.json()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.responder.stop()

    async def run(self, count: int, concurrency: int) -> LoadResult:
        """`count` flows, `concurrency` at a time; failures are counted, not raised."""
        if self.account_pool_size and not self._accounts:
            await self._fill_account_pool(concurrency)
        result = LoadResult()
        next_flow = iter(range(count))

        async def worker() -> None:
            for index in next_flow:
                await self._timed_flow(index, result)

        cpu_before = _own_cpu_seconds()
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, count))):
                group.create_task(worker())
        result.wall_seconds = time.perf_counter() - started
        result.client_cpu_seconds = _own_cpu_seconds() - cpu_before
        return result

    async def _fill_account_pool(self, concurrency: int) -> None:
        scratch = LoadResult()
        pending = iter(range(self.account_pool_size))

        async def worker() -> None:
            for _ in pending:
                self._accounts.append(await Session(self, scratch).new_account())

        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, concurrency)):
                group.create_task(worker())

    async def _timed_flow(self, index: int, result: LoadResult) -> None:
        started = time.perf_counter()
        result.flows += 1
        try:
            await self.flow(index, Session(self, result))
        except FlowError as err:
            result.errors[str(err)] += 1
            return
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
            result.errors[f"{type(err).__name__}: {err}"[:200]] += 1
            return
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
        result.issued += 1

    async def flow(self, index: int, session: Session) -> None:
        """One issuance from the first nonce to the downloaded chain."""
        await session.new_nonce()
        if self._accounts:
            account = self._accounts[index % len(self._accounts)]
        else:
            account = await session.new_account()
        name = f"b{secrets.token_hex(6)}.{self.domain}"
        payload = {"identifiers": [{"type": "dns", "value": name}]}
        response = await session.post(
            "newOrder", self.directory["newOrder"], payload, account.key, account.kid
        )
        order_url = response.headers.get("Location")
        if response.status_code != 201 or not order_url:
            raise FlowError(f"newOrder: HTTP {response.status_code}, Location {order_url!r}")
        order = response.json()
        for authz_url in order["authorizations"]:
            await self._authorize(session, account, authz_url)
        order = await session.poll("order", order_url, account, frozenset({"ready", "invalid"}))
        if order["status"] != "ready":
            raise FlowError(f"order: invalid {_describe(order.get('error') or {})}")
        cert_key = generate_private_key("ec256")
        csr = build_csr(cert_key, [name]).public_bytes(Encoding.DER)
        response = await session.post(
            "finalize", order["finalize"], {"csr": b64url_encode(csr)}, account.key, account.kid
        )
        order = response.json()
        if order.get("status") != "valid":
            done = frozenset({"valid", "invalid"})
            order = await session.poll("order (finalized)", order_url, account, done)
        if order["status"] != "valid" or "certificate" not in order:
            raise FlowError(
                f"finalize: order {order['status']} {_describe(order.get('error') or {})}"
            )
        response = await session.get("certificate", order["certificate"], account)
        spki = cert_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        _check_chain(response.content, name, spki)

    async def _authorize(self, session: Session, account: Account, authz_url: str) -> None:
        authz = (await session.get("authz", authz_url, account)).json()
        if authz["status"] == "valid":
            return
        if authz["status"] != "pending":
            raise FlowError(f"authz: status {authz['status']}")
        challenge = next((c for c in authz["challenges"] if c["type"] == "http-01"), None)
        if challenge is None:
            raise FlowError("authz: no http-01 challenge offered")
        token = challenge["token"]
        self.responder.tokens[token] = key_authorization(token, account.key)
        try:
            await session.post("challenge", challenge["url"], {}, account.key, account.kid)
            done = frozenset({"valid", "invalid", "deactivated", "expired", "revoked"})
            authz = await session.poll("authz", authz_url, account, done)
        finally:
            del self.responder.tokens[token]
        if authz["status"] != "valid":
            errors = [c.get("error") or {} for c in authz.get("challenges", [])]
            detail = next((_describe(e) for e in errors if e), "")
            raise FlowError(f"authz: {authz['status']} {detail}")


def _check_chain(pem: bytes, name: str, spki: bytes) -> None:
    """The leaf names `name` and certifies the CSR's key; anything else fails the flow."""
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as err:
        raise FlowError(f"certificate: not a PEM chain: {err}") from err
    leaf = chain[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if san.get_values_for_type(x509.DNSName) != [name]:
        raise FlowError(f"certificate: names {san.get_values_for_type(x509.DNSName)}")
    if leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) != spki:
        raise FlowError("certificate: public key differs from the CSR's")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# --- command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the ACME directory URL")
    parser.add_argument("--cafile", type=Path, required=True, help="trust anchor for the CA")
    parser.add_argument("--http01-port", type=int, required=True, help="responder port")
    parser.add_argument("--http01-host", default="127.0.0.1", help="responder address")
    parser.add_argument("--count", type=int, default=50, help="measured flows")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured flows first")
    parser.add_argument("--accounts", type=int, default=0, help="account pool; 0: one per flow")
    parser.add_argument("--domain", default="test", help="names are RANDOM.DOMAIN")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds")
    args = parser.parse_args(argv)

    async def go() -> LoadResult:
        async with LoadGenerator(
            args.directory,
            verify=ssl.create_default_context(cafile=str(args.cafile)),
            http01_port=args.http01_port,
            http01_host=args.http01_host,
            domain=args.domain,
            account_pool=args.accounts,
            poll_interval=args.poll_interval,
        ) as gen:
            if args.warmup:
                await gen.run(args.warmup, args.concurrency)
            return await gen.run(args.count, args.concurrency)

    result = asyncio.run(go())
    print(result.summary())
    if result.latencies_ms:
        print(f"latency mean {statistics.fmean(result.latencies_ms):.0f} ms")


if __name__ == "__main__":
    main()
