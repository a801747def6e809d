"""Real servers on loopback for the VA tests: challtestsrv's API, a tiny DNS server, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certsmith.acme.challenges import ACME_IDENTIFIER_OID, tlsalpn01_extension_value
from certsmith.acme.keys import PrivateKey, private_key_pem

# A key authorization has the shape token "." thumbprint; its content does not matter here.
KEY_AUTHORIZATION = (
    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"
)
OTHER_KEY_AUTHORIZATION = (
    "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.nP1qzpXGymHBrUEepNY9HCsQk7K8KhOypzEt62jcerQ"
)


def unique_name(prefix: str = "va") -> str:
    """A name no other test uses, so a session-wide challtestsrv holds no leftovers for it."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}.test"


class ChallTestSrvApi:
    """pebble-challtestsrv's management API; every record set is cleared on exit."""

    def __init__(self, management_port: int) -> None:
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{management_port}", trust_env=False
        )
        self._undo: list[tuple[str, dict[str, Any]]] = []

    async def _post(self, path: str, body: dict[str, Any]) -> None:
        response = await self._client.post(path, json=body)
        response.raise_for_status()

    async def set_txt(self, host: str, value: str) -> None:
        await self._post("/set-txt", {"host": f"{host}.", "value": value})
        self._undo.append(("/clear-txt", {"host": f"{host}."}))

    async def set_cname(self, host: str, target: str) -> None:
        await self._post("/set-cname", {"host": f"{host}.", "target": f"{target}."})
        self._undo.append(("/clear-cname", {"host": f"{host}."}))

    async def set_servfail(self, host: str) -> None:
        await self._post("/set-servfail", {"host": f"{host}."})
        self._undo.append(("/clear-servfail", {"host": f"{host}."}))

    async def add_aaaa(self, host: str, addresses: list[str]) -> None:
        await self._post("/add-aaaa", {"host": f"{host}.", "addresses": addresses})
        self._undo.append(("/clear-aaaa", {"host": f"{host}."}))

    async def aclose(self) -> None:
        try:
            for path, body in reversed(self._undo):
                await self._post(path, body)
        finally:
            await self._client.aclose()


# --- a tiny authoritative-style DNS server, for what challtestsrv cannot serve ------------


def _answer(query: dns.message.Message, zone: dict[str, list[str]]) -> dns.message.Message:
    """Answer as a recursive resolver would: the CNAME chain, then the records asked for."""
    response = dns.message.make_response(query)
    question = query.question[0]
    name = question.name
    for _ in range(8):
        lines = zone.get(name.to_text().lower())
        if lines is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        cnames = [line.split(None, 1)[1] for line in lines if line.startswith("CNAME ")]
        if cnames and question.rdtype != dns.rdatatype.CNAME:
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", cnames[0]))
            name = dns.name.from_text(cnames[0])
            continue
        wanted = dns.rdatatype.to_text(question.rdtype)
        found = [line.split(None, 1)[1] for line in lines if line.split(None, 1)[0] == wanted]
        if found:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", wanted, found))
        return response
    response.set_rcode(dns.rcode.SERVFAIL)
    return response


class _DnsProtocol(asyncio.DatagramProtocol):
    def __init__(self, zone: dict[str, list[str]]) -> None:
        self._zone = zone
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's UDP transport does not subclass DatagramTransport in 3.11.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self._transport is not None
        response = _answer(dns.message.from_wire(data), self._zone)
        self._transport.sendto(response.to_wire(), addr)


@contextlib.asynccontextmanager
async def dns_server(zone: dict[str, list[str]]) -> AsyncIterator[tuple[str, int]]:
    """A UDP DNS server on 127.0.0.1 serving `zone`: absolute names to "TYPE rdata" lines.

    Answers are small, so UDP alone suffices: nothing is truncated and no client needs TCP.
    """
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _DnsProtocol(zone), local_addr=("127.0.0.1", 0)
    )
    try:
        host, port = transport.get_extra_info("sockname")[:2]
        yield host, port
    finally:
        transport.close()
        await asyncio.sleep(0)  # lets the transport close its socket before the loop ends


# --- acme-tls/1 certificates and a TLS server presenting them ----------------------------


def custom_certificate(
    names: list[x509.GeneralName],
    extension_value: bytes | None = None,
    *,
    critical: bool = True,
    key_authorization: str = KEY_AUTHORIZATION,
) -> tuple[x509.Certificate, PrivateKey]:
    """A self-signed certificate with chosen SANs and acmeIdentifier, for the broken cases.

    `extension_value` None means the right digest for `key_authorization`; b"" leaves the
    extension out.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
    )
    if extension_value is None:
        extension_value = tlsalpn01_extension_value(key_authorization)
    if extension_value:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, extension_value), critical=critical
        )
    return builder.sign(key, hashes.SHA256()), key


def dns_san(name: str) -> x509.GeneralName:
    return x509.DNSName(name)


def ip_san(value: str) -> x509.GeneralName:
    return x509.IPAddress(ipaddress.ip_address(value))


@dataclass
class TlsServer:
    """What a test TLS server saw: the SNI of each handshake."""

    host: str
    port: int
    server_names: list[str | None] = field(default_factory=list)


@contextlib.asynccontextmanager
async def tls_server(
    host: str,
    port: int,
    certificate: tuple[x509.Certificate, PrivateKey],
    directory: Path,
    alpn: list[str] | None = None,
) -> AsyncIterator[TlsServer]:
    """A TLS server on loopback presenting `certificate`, offering `alpn` (acme-tls/1)."""
    cert, key = certificate
    stem = directory / f"tls-{uuid.uuid4().hex[:8]}"
    cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(private_key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["acme-tls/1"] if alpn is None else alpn)
    seen = TlsServer(host, port)

    def on_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.server_names.append(name)

    context.sni_callback = on_sni
    async with _serve(host, port, _wait_for_eof, ssl_context=context):
        yield seen


async def _wait_for_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The validator only shakes hands; the server waits until it hangs up.
    await reader.read()


async def _send_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


@contextlib.asynccontextmanager
async def plain_server(host: str, port: int, *, silent: bool) -> AsyncIterator[None]:
    """A TCP server that never speaks TLS: `silent` waits mute, otherwise it answers HTTP."""
    async with _serve(host, port, _wait_for_eof if silent else _send_http):
        yield


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


@contextlib.asynccontextmanager
async def _serve(
    host: str, port: int, handler: Handler, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[None]:
    writers: set[asyncio.StreamWriter] = set()
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            await handler(reader, writer)
        except OSError:
            pass  # the validator hanging up mid-way is normal
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            writers.discard(writer)

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(run(reader, writer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(connected, host, port, ssl=ssl_context)
    try:
        yield
    finally:
        server.close()
        for writer in list(writers):
            writer.close()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        await server.wait_closed()
