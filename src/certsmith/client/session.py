"""An ACME session on httpx (RFC 8555 §6): directory, nonces, signed POSTs, problems.

Problem documents become `AcmeProblem`; a `badNonce` answer is retried with the nonce it
carried (RFC 8555 §6.5); polling honours `Retry-After`.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from certsmith import __version__
from certsmith.acme.jose import AnyKey, sign_jws
from certsmith.acme.problems import AcmeProblem, ProblemType

# Pebble rejects up to half of all nonces on purpose; each retry halves the odds again.
_BAD_NONCE_RETRIES = 15
_DEFAULT_POLL = 1.0
_MAX_POLL = 10.0


class AcmeClientError(Exception):
    """A failure that is not a problem document: unreachable CA, bad reply, timeout."""


def problem_from_response(response: httpx.Response) -> AcmeProblem:
    """The problem document of an error response, or a serverInternal stand-in."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        detail = f"HTTP {response.status_code} without a problem document"
        return AcmeProblem(ProblemType.SERVER_INTERNAL, detail, status=response.status_code)
    problem = AcmeProblem.from_dict(doc)
    problem.status = response.status_code
    return problem


def retry_after(response: httpx.Response, default: float) -> float:
    """Seconds from a Retry-After header (delta or HTTP date), capped (RFC 8555 §8.2)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return default
    if value.strip().isdigit():
        return min(float(value), _MAX_POLL)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), _MAX_POLL)


class AcmeSession:
    """One account key talking to one CA."""

    def __init__(
        self,
        directory_url: str,
        key: AnyKey,
        *,
        verify: ssl.SSLContext | bool = True,
        kid: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.directory_url = directory_url
        self.key = key
        self.kid = kid
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=timeout,
            headers={"User-Agent": f"certsmith/{__version__}"},
        )
        self._directory: dict[str, Any] | None = None
        # Concurrent first users of a session share one directory fetch.
        self._directory_lock = asyncio.Lock()
        self._nonces: list[str] = []

    async def __aenter__(self) -> AcmeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def directory(self) -> dict[str, Any]:
        async with self._directory_lock:
            return await self._fetch_directory()

    async def _fetch_directory(self) -> dict[str, Any]:
        if self._directory is None:
            response = await self._request("GET", self.directory_url)
            if response.status_code != 200:
                raise AcmeClientError(
                    f"{self.directory_url}: HTTP {response.status_code}, not an ACME directory"
                )
            directory = response.json()
            if not isinstance(directory, dict) or "newNonce" not in directory:
                raise AcmeClientError(f"{self.directory_url} is not an ACME directory")
            self._directory = directory
        return self._directory

    async def url(self, name: str) -> str:
        """A resource URL from the directory, e.g. 'newOrder'."""
        directory = await self.directory()
        if name not in directory:
            raise AcmeClientError(f"the CA does not offer {name}")
        return str(directory[name])

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as err:
            raise AcmeClientError(f"timed out talking to the CA at {url}") from err
        except httpx.HTTPError as err:
            raise AcmeClientError(f"cannot reach the CA at {url}: {err}") from err
        nonce = response.headers.get("Replay-Nonce")
        if nonce:
            self._nonces.append(nonce)
        return response

    async def get(self, url: str) -> httpx.Response:
        """A plain, unsigned GET, for the few resources that are not POST-as-GET (ARI)."""
        return await self._request("GET", url)

    async def _nonce(self) -> str:
        if self._nonces:
            return self._nonces.pop()
        await self._request("HEAD", await self.url("newNonce"))
        if not self._nonces:
            raise AcmeClientError("the CA's newNonce gave no Replay-Nonce")
        return self._nonces.pop()

    async def post(
        self,
        url: str,
        payload: dict[str, Any] | bytes | None,
        *,
        use_jwk: bool = False,
        key: AnyKey | None = None,
    ) -> httpx.Response:
        """A signed POST (POST-as-GET when `payload` is None); problems are raised."""
        for attempt in range(_BAD_NONCE_RETRIES + 1):
            signer = key or self.key
            kid = None if use_jwk or key is not None else self.kid
            if kid is None and not use_jwk and key is None:
                raise AcmeClientError("no account URL yet; register first")
            body = sign_jws(payload, signer, url=url, nonce=await self._nonce(), kid=kid)
            response = await self._request(
                "POST", url, json=body, headers={"Content-Type": "application/jose+json"}
            )
            if response.status_code < 400:
                return response
            problem = problem_from_response(response)
            if problem.type is ProblemType.BAD_NONCE and attempt < _BAD_NONCE_RETRIES:
                continue
            raise problem
        raise AssertionError("unreachable")

    async def get_json(self, url: str) -> dict[str, Any]:
        response = await self.post(url, None)
        body = response.json()
        if not isinstance(body, dict):
            raise AcmeClientError(f"{url} did not return a JSON object")
        return body

    async def poll(
        self,
        url: str,
        done: Callable[[dict[str, Any]], bool],
        *,
        max_wait: float = 120.0,
        first_delay: float = 0.0,
    ) -> dict[str, Any]:
        """POST-as-GET `url` until `done(body)`, waiting as Retry-After says (RFC 8555 §7.5.1)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        delay = first_delay
        while True:
            if delay:
                await asyncio.sleep(delay)
            response = await self.post(url, None)
            body = response.json()
            if done(body):
                return dict(body)
            if loop.time() >= deadline:
                raise AcmeClientError(f"{url} still {body.get('status')} after {max_wait:.0f}s")
            # Start fast: a CA often validates in milliseconds; back off to a second.
            delay = retry_after(response, min(max(delay * 2, 0.01), _DEFAULT_POLL))
