"""tls-alpn-01 validation (RFC 8737, RFC 8738 §6) against real TLS servers on loopback."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509

from certsmith.acme.challenges import (
    ACME_IDENTIFIER_OID,
    tlsalpn01_certificate,
    tlsalpn01_extension_value,
)
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.validation.resolver import Resolver
from certsmith.server.validation.tlsalpn01 import TlsAlpn01Validator
from tests.support import ChallTestSrv, free_port
from tests.unit.va_support import (
    KEY_AUTHORIZATION,
    OTHER_KEY_AUTHORIZATION,
    ChallTestSrvApi,
    custom_certificate,
    dns_san,
    ip_san,
    plain_server,
    tls_server,
    unique_name,
)


def _ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback here")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def validator(challtestsrv: ChallTestSrv, port: int) -> TlsAlpn01Validator:
    # challtestsrv answers every A query with 127.0.0.1 and, started with an empty
    # -defaultIPv6, no AAAA query.
    resolver = Resolver(("127.0.0.1", challtestsrv.dns_port), timeout=5.0)
    return TlsAlpn01Validator(resolver, port, timeout=5.0)


@pytest.fixture
async def api(challtestsrv: ChallTestSrv) -> AsyncIterator[ChallTestSrvApi]:
    api = ChallTestSrvApi(challtestsrv.management_port)
    yield api
    await api.aclose()


async def expect_problem(
    validator: TlsAlpn01Validator, identifier_type: str, value: str, kind: ProblemType
) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as caught:
        await validator.validate(identifier_type, value, KEY_AUTHORIZATION)
    problem = caught.value
    assert problem.type is kind, problem.detail
    assert problem.identifier == {"type": identifier_type, "value": value}
    return problem


# --- the certificate builder the client will use too --------------------------------------


def test_built_certificate_has_what_rfc8737_asks() -> None:
    cert, _ = tlsalpn01_certificate("dns", "example.test", KEY_AUTHORIZATION)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.DNSName("example.test")]
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert extension.critical
    value = extension.value.public_bytes()
    assert value[:2] == b"\x04\x20" and len(value) == 34
    assert value == tlsalpn01_extension_value(KEY_AUTHORIZATION)


def test_built_certificate_for_ip() -> None:
    cert, _ = tlsalpn01_certificate("ip", "2001:db8::1", KEY_AUTHORIZATION)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(san.value) == [x509.IPAddress(ipaddress.ip_address("2001:db8::1"))]


def test_builder_refuses_other_identifier_types() -> None:
    with pytest.raises(ValueError, match="email"):
        tlsalpn01_certificate("email", "a@example.test", KEY_AUTHORIZATION)


# --- validation ---------------------------------------------------------------------------


async def test_good_dns_name(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    name = unique_name()
    certificate = tlsalpn01_certificate("dns", name, KEY_AUTHORIZATION)
    async with tls_server("127.0.0.1", port, certificate, tmp_path) as server:
        record = await validator.validate("dns", name, KEY_AUTHORIZATION)
    assert record == {
        "hostname": name,
        "port": str(port),
        "addressesResolved": ["127.0.0.1"],
        "addressUsed": "127.0.0.1",
    }
    assert server.server_names == [name]


async def test_good_ipv4(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    # 127.0.0.2 is loopback on Linux, and not the address challtestsrv hands out, so the
    # validator must dial the identifier itself.
    certificate = tlsalpn01_certificate("ip", "127.0.0.2", KEY_AUTHORIZATION)
    async with tls_server("127.0.0.2", port, certificate, tmp_path) as server:
        record = await validator.validate("ip", "127.0.0.2", KEY_AUTHORIZATION)
    assert record["addressUsed"] == "127.0.0.2"
    assert server.server_names == ["2.0.0.127.in-addr.arpa"]  # RFC 8738 §6


@needs_ipv6
async def test_good_ipv6(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    certificate = tlsalpn01_certificate("ip", "::1", KEY_AUTHORIZATION)
    async with tls_server("::1", port, certificate, tmp_path) as server:
        record = await validator.validate("ip", "::1", KEY_AUTHORIZATION)
    assert record["addressUsed"] == "::1"
    assert server.server_names == ["1." + "0." * 31 + "ip6.arpa"]


async def test_wrong_digest(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    name = unique_name()
    certificate = tlsalpn01_certificate("dns", name, OTHER_KEY_AUTHORIZATION)
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert "different digest" in problem.detail


async def test_digest_without_octet_string(
    validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    # A frequent client bug: the bare 32-byte digest as the extension value.
    name = unique_name()
    bare = tlsalpn01_extension_value(KEY_AUTHORIZATION)[2:]
    async with tls_server("127.0.0.1", port, custom_certificate([dns_san(name)], bare), tmp_path):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert "not a DER OCTET STRING of 32 bytes" in problem.detail


async def test_extension_not_critical(
    validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    name = unique_name()
    certificate = custom_certificate([dns_san(name)], critical=False)
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert "not marked critical" in problem.detail


async def test_extension_missing(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    name = unique_name()
    certificate = custom_certificate([dns_san(name)], b"")
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert "no acmeIdentifier extension" in problem.detail


async def test_extra_san(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    name = unique_name()
    certificate = custom_certificate([dns_san(name), dns_san(f"www.{name}")])
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert f"must hold only DNS:{name}, but holds DNS:{name}, DNS:www.{name}" in problem.detail


async def test_wrong_san(validator: TlsAlpn01Validator, port: int, tmp_path: Path) -> None:
    name = unique_name()
    certificate = tlsalpn01_certificate("dns", f"other-{name}", KEY_AUTHORIZATION)
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert f"but holds DNS:other-{name}" in problem.detail


async def test_dns_san_for_ip_identifier(
    validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    # RFC 8738 §6: the SAN is an iPAddress entry, not the reverse name or a text form.
    certificate = custom_certificate([dns_san("127.0.0.2")])
    async with tls_server("127.0.0.2", port, certificate, tmp_path):
        problem = await expect_problem(validator, "ip", "127.0.0.2", ProblemType.INCORRECT_RESPONSE)
    assert "must hold only IP:127.0.0.2, but holds DNS:127.0.0.2" in problem.detail


async def test_san_name_case_is_ignored(
    validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    name = unique_name()
    certificate = custom_certificate([dns_san(name.upper())])
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        await validator.validate("dns", name, KEY_AUTHORIZATION)


async def test_ip_san_must_be_the_identifier(
    validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    certificate = custom_certificate([ip_san("127.0.0.3")])
    async with tls_server("127.0.0.2", port, certificate, tmp_path):
        await expect_problem(validator, "ip", "127.0.0.2", ProblemType.INCORRECT_RESPONSE)


async def test_server_without_acme_alpn(
    validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    name = unique_name()
    certificate = tlsalpn01_certificate("dns", name, KEY_AUTHORIZATION)
    async with tls_server("127.0.0.1", port, certificate, tmp_path, alpn=["http/1.1"]):
        problem = await expect_problem(validator, "dns", name, ProblemType.TLS)
    assert "did not negotiate the ALPN protocol acme-tls/1 (it chose none;" in problem.detail


async def test_not_tls_at_all(validator: TlsAlpn01Validator, port: int) -> None:
    name = unique_name()
    async with plain_server("127.0.0.1", port, silent=False):
        problem = await expect_problem(validator, "dns", name, ProblemType.TLS)
    assert problem.detail.startswith("127.0.0.1: TLS handshake failed")


async def test_nothing_listening(validator: TlsAlpn01Validator, port: int) -> None:
    name = unique_name()
    problem = await expect_problem(validator, "dns", name, ProblemType.CONNECTION)
    assert problem.detail == "127.0.0.1: connection failed: Connection refused"


async def test_handshake_timeout(challtestsrv: ChallTestSrv, port: int) -> None:
    resolver = Resolver(("127.0.0.1", challtestsrv.dns_port), timeout=5.0)
    validator = TlsAlpn01Validator(resolver, port, timeout=0.5)
    name = unique_name()
    async with plain_server("127.0.0.1", port, silent=True):
        started = time.monotonic()
        problem = await expect_problem(validator, "dns", name, ProblemType.CONNECTION)
        elapsed = time.monotonic() - started
    assert problem.detail == "127.0.0.1: timeout during TLS handshake (likely firewall problem)"
    assert elapsed < 3


@needs_ipv6
async def test_moves_on_only_when_connecting_fails(
    api: ChallTestSrvApi, validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    # The resolver puts ::1 (nothing listening) before 127.0.0.1 (the right answer).
    name = unique_name()
    await api.add_aaaa(name, ["::1"])
    certificate = tlsalpn01_certificate("dns", name, KEY_AUTHORIZATION)
    async with tls_server("127.0.0.1", port, certificate, tmp_path):
        record = await validator.validate("dns", name, KEY_AUTHORIZATION)
    assert record["addressesResolved"] == ["::1", "127.0.0.1"]
    assert record["addressUsed"] == "127.0.0.1"


@needs_ipv6
async def test_a_wrong_answer_is_final(
    api: ChallTestSrvApi, validator: TlsAlpn01Validator, port: int, tmp_path: Path
) -> None:
    name = unique_name()
    await api.add_aaaa(name, ["::1"])
    wrong = tlsalpn01_certificate("dns", name, OTHER_KEY_AUTHORIZATION)
    right = tlsalpn01_certificate("dns", name, KEY_AUTHORIZATION)
    async with (
        tls_server("::1", port, wrong, tmp_path),
        tls_server("127.0.0.1", port, right, tmp_path) as second,
    ):
        problem = await expect_problem(validator, "dns", name, ProblemType.INCORRECT_RESPONSE)
    assert problem.detail.startswith("::1: ")
    assert second.server_names == []


async def test_unsupported_identifier_type(validator: TlsAlpn01Validator) -> None:
    await expect_problem(validator, "email", "a@example.test", ProblemType.UNSUPPORTED_IDENTIFIER)
