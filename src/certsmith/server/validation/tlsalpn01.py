"""tls-alpn-01 validation (RFC 8737; RFC 8738 §6 for IP addresses): the handshake's certificate.

A certificate that breaks RFC 8737 §3 is `incorrectResponse`, as a wrong http-01 body is in
http01.py: the applicant's server answered, and the answer did not meet the challenge's
requirements (RFC 8555 §6.7). Failing to reach it is `connection`; a failed handshake or an
ALPN other than acme-tls/1 is `tls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import ssl
from typing import Any

from cryptography import x509

from certsmith.acme.challenges import (
    ACME_IDENTIFIER_OID,
    ACME_TLS_ALPN_PROTOCOL,
    tlsalpn01_extension_value,
)
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.validation.resolver import IPAddress, Resolver, first_reachable

# Closing politely is a courtesy: the certificate is in hand, so a peer that never answers
# close_notify is not waited for longer than this.
_CLOSE_WAIT = 1.0
_SHOWN_NAMES = 3


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The certificate is self-signed by design (RFC 8737 §3); what it proves is checked
    # below, so chain and host name verification would only refuse every valid answer.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8737 §4
    context.set_alpn_protocols([ACME_TLS_ALPN_PROTOCOL])
    return context


def _reason(err: OSError) -> str:
    # asyncio words a refused connect as "Connect call failed (address)"; the errno's own
    # text ("Connection refused") is what an operator searches for.
    return os.strerror(err.errno) if err.errno else str(err)


def _describe(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    return type(name).__name__


class TlsAlpn01Validator:
    """Shakes hands with acme-tls/1 on `port` and checks the certificate (RFC 8737 §3)."""

    def __init__(self, resolver: Resolver, port: int, timeout: float) -> None:
        self._resolver = resolver
        self._port = port
        self._timeout = timeout
        self._context = _client_context()

    async def validate(
        self, identifier_type: str, value: str, key_authorization: str
    ) -> dict[str, Any]:
        """The validation record on success; an AcmeProblem saying what went wrong otherwise.

        A "dns" name is resolved and sent as SNI; an "ip" is dialled directly with its
        reverse-DNS name as SNI (RFC 8738 §6).
        """
        identifier = {"type": identifier_type, "value": value}
        if identifier_type == "dns":
            addresses = await self._resolver.addresses(value)
            server_name = value
        elif identifier_type == "ip":
            try:
                address = ipaddress.ip_address(value)
            except ValueError as err:
                raise AcmeProblem(
                    ProblemType.MALFORMED, f"{value!r} is not an IP address", identifier=identifier
                ) from err
            addresses = [address]
            server_name = address.reverse_pointer
        else:
            raise AcmeProblem(
                ProblemType.UNSUPPORTED_IDENTIFIER,
                f"tls-alpn-01 cannot validate identifiers of type {identifier_type!r}",
                identifier=identifier,
            )
        record: dict[str, Any] = {
            "hostname": value,
            "port": str(self._port),
            "addressesResolved": [str(a) for a in addresses],
        }
        der, address = await first_reachable(
            addresses, record, lambda a: self._certificate_from(a, server_name, identifier)
        )
        _check_certificate(der, identifier, key_authorization, address)
        return record

    async def _certificate_from(
        self, address: IPAddress, server_name: str, identifier: dict[str, str]
    ) -> tuple[bytes, IPAddress]:
        return await self._certificate(address, server_name, identifier), address

    async def _certificate(
        self, address: IPAddress, server_name: str, identifier: dict[str, str]
    ) -> bytes:
        """The DER certificate the server presents for `server_name` with acme-tls/1."""
        phase = "connect"
        writer: asyncio.StreamWriter | None = None
        established = False
        try:
            async with asyncio.timeout(self._timeout):
                _, writer = await asyncio.open_connection(str(address), self._port)
                # TLS starts on an open connection so a refused or silent port (connection,
                # try the next address) stays apart from a bad handshake (tls, final).
                phase = "TLS handshake"
                await writer.start_tls(self._context, server_hostname=server_name)
                established = True
                ssl_object = writer.get_extra_info("ssl_object")
                protocol = ssl_object.selected_alpn_protocol()
                der: bytes | None = ssl_object.getpeercert(binary_form=True)
        except TimeoutError as err:
            raise AcmeProblem(
                ProblemType.CONNECTION,
                f"{address}: timeout during {phase} (likely firewall problem)",
                identifier=identifier,
            ) from err
        except OSError as err:
            # ssl.SSLError is an OSError too; anything failing after the TCP connect
            # belongs to the handshake.
            if phase == "connect":
                raise AcmeProblem(
                    ProblemType.CONNECTION,
                    f"{address}: connection failed: {_reason(err)}",
                    identifier=identifier,
                ) from err
            raise AcmeProblem(
                ProblemType.TLS,
                f"{address}: TLS handshake failed: {getattr(err, 'reason', None) or err}",
                identifier=identifier,
            ) from err
        finally:
            if writer is not None:
                await _close(writer, established)
        if protocol != ACME_TLS_ALPN_PROTOCOL:
            raise AcmeProblem(
                ProblemType.TLS,
                f"{address}: the server did not negotiate the ALPN protocol "
                f"{ACME_TLS_ALPN_PROTOCOL} (it chose {protocol or 'none'}; RFC 8737 §3)",
                identifier=identifier,
            )
        if not der:
            raise AcmeProblem(
                ProblemType.TLS, f"{address}: the server sent no certificate", identifier=identifier
            )
        return der


async def _close(writer: asyncio.StreamWriter, established: bool) -> None:
    writer.close()
    # After a failed start_tls the stream never hears that its transport closed, so
    # wait_closed() would only ever time out; the socket closes on the next loop pass.
    if established:
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_CLOSE_WAIT):
                await writer.wait_closed()


def _check_certificate(
    der: bytes, identifier: dict[str, str], key_authorization: str, address: IPAddress
) -> None:
    """RFC 8737 §3: one SAN equal to the identifier, and a critical acmeIdentifier digest."""

    def wrong(detail: str) -> AcmeProblem:
        return AcmeProblem(
            ProblemType.INCORRECT_RESPONSE,
            f"{address}: incorrect tls-alpn-01 certificate: {detail}",
            identifier=identifier,
        )

    try:
        extensions = x509.load_der_x509_certificate(der).extensions
    except (ValueError, x509.DuplicateExtension) as err:
        raise wrong(f"it cannot be parsed ({err})") from err
    try:
        names = list(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound as err:
        raise wrong("it has no subjectAltName extension") from err
    if identifier["type"] == "dns":
        expected: x509.GeneralName = x509.DNSName(identifier["value"])
        # DNS names compare case-insensitively (RFC 4343).
        matches = [
            n
            for n in names
            if isinstance(n, x509.DNSName) and n.value.lower() == identifier["value"].lower()
        ]
    else:
        expected = x509.IPAddress(ipaddress.ip_address(identifier["value"]))
        matches = [n for n in names if n == expected]
    if len(names) != 1 or len(matches) != 1:
        shown = ", ".join(_describe(n) for n in names[:_SHOWN_NAMES])
        if len(names) > _SHOWN_NAMES:
            shown += f" and {len(names) - _SHOWN_NAMES} more"
        raise wrong(
            f"its subjectAltName must hold only {_describe(expected)}, "
            f"but holds {shown or 'nothing'}"
        )
    try:
        extension = extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    except x509.ExtensionNotFound as err:
        raise wrong(
            f"it has no acmeIdentifier extension ({ACME_IDENTIFIER_OID.dotted_string})"
        ) from err
    if not extension.critical:
        raise wrong("its acmeIdentifier extension is not marked critical")
    found = extension.value.public_bytes()
    expected_value = tlsalpn01_extension_value(key_authorization)
    if len(found) != len(expected_value) or found[:2] != expected_value[:2]:
        raise wrong(
            "its acmeIdentifier extension is not a DER OCTET STRING of 32 bytes "
            "(SHA-256 of the key authorization)"
        )
    if found != expected_value:
        raise wrong(
            "its acmeIdentifier extension holds a different digest from "
            "SHA-256 of the key authorization"
        )
