"""tls-alpn-01 solver (RFC 8737): a standalone TLS responder speaking only acme-tls/1."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
import tempfile

from cryptography.hazmat.primitives.serialization import Encoding

from certsmith.acme.challenges import ACME_TLS_ALPN_PROTOCOL, tlsalpn01_certificate
from certsmith.acme.keys import private_key_pem
from certsmith.client.solvers import listen, stop


def _context(pem: bytes | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN_PROTOCOL])
    if pem is not None:
        # ssl loads chains from files only; the file lives for the length of this call.
        fd, path = tempfile.mkstemp(suffix=".pem")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
    return context


class StandaloneTlsAlpn01:
    """Answers the CA's TLS handshake with the challenge certificate for the SNI it sends."""

    challenge_type = "tls-alpn-01"

    def __init__(self, port: int = 443, address: str | None = None) -> None:
        self.port = port
        self.address = address
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> StandaloneTlsAlpn01:
        default = _context(None)
        default.sni_callback = self._select
        self._server = await listen(
            self._serve,
            self.address,
            self.port,
            tls=default,
            busy_advice="stop the TLS server there or use another challenge type",
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._server)

    def _select(self, sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        context = self._contexts.get((name or "").lower())
        if context is not None:
            sock.context = context

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        kind, value = identifier["type"], identifier["value"]
        certificate, key = tlsalpn01_certificate(kind, value, key_authorization)
        pem = private_key_pem(key) + certificate.public_bytes(Encoding.PEM)
        # RFC 8738 §6: an IP address is asked for by its reverse-DNS name.
        sni = value if kind == "dns" else ipaddress.ip_address(value).reverse_pointer
        self._contexts[sni.lower()] = _context(pem)

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        value = identifier["value"]
        if identifier["type"] != "dns":
            value = ipaddress.ip_address(value).reverse_pointer
        self._contexts.pop(value.lower(), None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # The handshake is the whole answer; wait briefly for the CA to hang up.
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            await asyncio.wait_for(reader.read(1), 5)
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
