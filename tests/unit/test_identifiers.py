"""Identifiers and the CA's policy over them.

DNS names: RFC 8555 §7.1.4, RFC 5890/5891. IP addresses: RFC 8738, text form per RFC 5952.
"""

from __future__ import annotations

from typing import Any

import pytest

from certsmith.acme.identifiers import Identifier, normalise_dns_name, parse_identifier
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.policy import IdentifierPolicy, normalise_suffix


def dns(value: str) -> dict[str, str]:
    return {"type": "dns", "value": value}


def ip(value: str) -> dict[str, str]:
    return {"type": "ip", "value": value}


def label(length: int, char: str = "a") -> str:
    return char * length


def refused(value: str) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as excinfo:
        normalise_dns_name(value)
    return excinfo.value


# --- normalise_dns_name: accepted names ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("example.com", "example.com", id="already-normal"),
        pytest.param("Example.COM", "example.com", id="lowercased"),
        pytest.param("WWW.Sub.Example.Org", "www.sub.example.org", id="lowercased-deep"),
        pytest.param("bücher.example", "xn--bcher-kva.example", id="idna-u-label"),
        pytest.param("BÜCHER.example", "xn--bcher-kva.example", id="idna-uppercase-u-label"),
        pytest.param("faß.de", "xn--fa-hia.de", id="idna2008-sharp-s-not-mapped-to-ss"),
        pytest.param("例え.テスト", "xn--r8jz45g.xn--zckzah", id="idna-cjk"),
        pytest.param("xn--bcher-kva.example", "xn--bcher-kva.example", id="valid-a-label"),
        pytest.param("XN--BCHER-KVA.example", "xn--bcher-kva.example", id="uppercase-a-label"),
        pytest.param(
            "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
            "example.com",
            id="fullwidth-mapped-by-uts46",
        ),
        pytest.param("a-b.example", "a-b.example", id="inner-hyphen"),
        pytest.param("1.2.3.example", "1.2.3.example", id="numeric-labels-below-tld"),
        pytest.param("example.c0m", "example.c0m", id="tld-with-digit"),
        pytest.param(label(63) + ".example", label(63) + ".example", id="label-63"),
        pytest.param(
            ".".join([label(63)] * 3 + [label(61)]),
            ".".join([label(63)] * 3 + [label(61)]),
            id="name-253",
        ),
        pytest.param("*.example.com", "*.example.com", id="wildcard-kept-for-policy"),
        pytest.param("*.Bücher.example", "*.xn--bcher-kva.example", id="wildcard-idna"),
    ],
)
def test_normalises(value: str, expected: str) -> None:
    assert normalise_dns_name(value) == expected


def test_the_253_character_case_is_really_253_characters() -> None:
    name = ".".join([label(63)] * 3 + [label(61)])
    assert len(name) == 253


# --- normalise_dns_name: refused names ---


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("example.com.", id="trailing-dot"),
        pytest.param("bücher.example.", id="trailing-dot-unicode"),
        pytest.param("example.com。", id="trailing-ideographic-full-stop"),
        pytest.param("localhost", id="single-label"),
        pytest.param("com", id="bare-tld"),
        pytest.param(label(64) + ".example", id="label-64"),
        pytest.param("ü" + label(62) + ".example", id="label-64-after-idna"),
        pytest.param(".".join([label(63)] * 3 + [label(62)]), id="name-254"),
        pytest.param(".".join([label(63)] * 4), id="name-255"),
        pytest.param("-a.example", id="leading-hyphen"),
        pytest.param("a-.example", id="trailing-hyphen"),
        pytest.param("a_b.example", id="underscore"),
        pytest.param("_acme-challenge.example.com", id="leading-underscore"),
        pytest.param("a b.example", id="space"),
        pytest.param("a..example", id="empty-label"),
        pytest.param(".example", id="leading-dot"),
        pytest.param("exa$mple.com", id="dollar"),
        pytest.param("example.123", id="all-numeric-tld"),
        pytest.param("example.0", id="all-numeric-tld-zero"),
        pytest.param("1.2.3.4", id="ipv4-as-dns"),
        pytest.param("127.0.0.1", id="loopback-ipv4-as-dns"),
        pytest.param("::1", id="ipv6-as-dns"),
        pytest.param("[::1]", id="bracketed-ipv6-as-dns"),
        pytest.param("2001:db8::1", id="ipv6-documentation-as-dns"),
        pytest.param("a.*.example.com", id="star-in-the-middle"),
        pytest.param("foo*.example.com", id="star-inside-a-label"),
        pytest.param("*.*.example.com", id="two-stars"),
        pytest.param("*", id="star-alone"),
        pytest.param("*.", id="star-dot"),
        pytest.param("example.*", id="star-last"),
        pytest.param("xn--zz.example", id="invalid-a-label"),
        pytest.param("xn--.example", id="empty-a-label"),
        pytest.param("xn--a.example", id="a-label-decoding-to-a-control-char"),
        pytest.param("xn--ls8h.example", id="a-label-decoding-to-an-emoji"),
        pytest.param("xn--bcher-kva-.example", id="a-label-ending-in-hyphen"),
        pytest.param("💩.example", id="emoji-u-label"),
        pytest.param("a\u200db.example", id="zero-width-joiner"),
    ],
)
def test_refuses_with_rejected_identifier(value: str) -> None:
    problem = refused(value)
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert problem.identifier == dns(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("example.com\n", id="newline-at-the-end"),
        pytest.param("www\n.example.com", id="newline-ending-a-label"),
        pytest.param("*.example.com\n", id="newline-after-a-wildcard-name"),
    ],
)
def test_refuses_a_newline(value: str) -> None:
    # A '$' anchor would match before the final newline; labels must match whole.
    problem = refused(value)
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert problem.identifier == dns(value)


# --- parse_identifier ---


def test_parse_identifier_normalises_a_dns_identifier() -> None:
    ident = parse_identifier(dns("WWW.Bücher.Example"))
    assert ident == Identifier("dns", "www.xn--bcher-kva.example")
    assert ident.to_dict() == dns("www.xn--bcher-kva.example")
    assert not ident.is_wildcard
    assert ident.base == "www.xn--bcher-kva.example"


def test_parse_identifier_keeps_a_wildcard_with_its_base() -> None:
    ident = parse_identifier(dns("*.Example.com"))
    assert ident.value == "*.example.com"
    assert ident.is_wildcard
    assert ident.base == "example.com"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("example.com", id="string"),
        pytest.param(["dns", "example.com"], id="list"),
        pytest.param(None, id="null"),
        pytest.param({"value": "example.com"}, id="no-type"),
        pytest.param({"type": "dns"}, id="no-value"),
        pytest.param({"type": "dns", "value": 7}, id="value-number"),
        pytest.param({"type": None, "value": "example.com"}, id="type-null"),
    ],
)
def test_parse_identifier_refuses_a_malformed_identifier(raw: Any) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_identifier(raw)
    assert excinfo.value.type is ProblemType.MALFORMED


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param({"type": "email", "value": "a@example.com"}, id="email"),
        pytest.param({"type": "DNS", "value": "example.com"}, id="uppercase-dns"),
        pytest.param({"type": "IP", "value": "192.0.2.1"}, id="uppercase-ip"),
        pytest.param({"type": "ipv6", "value": "2001:db8::1"}, id="ipv6-is-not-a-type"),
        pytest.param({"type": "", "value": "example.com"}, id="empty-type"),
    ],
)
def test_parse_identifier_refuses_other_types_as_unsupported(raw: dict[str, str]) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_identifier(raw)
    assert excinfo.value.type is ProblemType.UNSUPPORTED_IDENTIFIER
    assert excinfo.value.identifier == raw


# --- parse_identifier: IP addresses (RFC 8738 §3, IPv6 text per RFC 5952 §4) ---

UNSPECIFIED_IPV4 = "0.0.0.0"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("192.0.2.1", "192.0.2.1", id="ipv4"),
        pytest.param("2001:db8::1", "2001:db8::1", id="ipv6-already-canonical"),
        pytest.param("2001:DB8::1", "2001:db8::1", id="ipv6-uppercase-hex"),
        pytest.param(
            "2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1", id="ipv6-written-in-full"
        ),
        pytest.param("2001:db8:0:0:0:1:0:0", "2001:db8::1:0:0", id="ipv6-longest-zero-run"),
        pytest.param(
            "2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", id="ipv6-first-of-equal-zero-runs"
        ),
        pytest.param(
            "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", id="ipv6-lone-zero-field-kept"
        ),
        pytest.param("0:0:0:0:0:0:0:1", "::1", id="ipv6-loopback-written-in-full"),
        pytest.param(
            UNSPECIFIED_IPV4, UNSPECIFIED_IPV4, id="ipv4-unspecified-parses-policy-refuses"
        ),
    ],
)
def test_parse_identifier_canonicalises_an_ip_address(value: str, expected: str) -> None:
    ident = parse_identifier(ip(value))
    assert ident == Identifier("ip", expected)
    assert ident.to_dict() == ip(expected)
    assert ident.is_ip
    assert not ident.is_wildcard
    assert ident.base == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("fe80::1%eth0", id="ipv6-zone-id"),
        pytest.param("fe80::1%25eth0", id="ipv6-zone-id-uri-escaped"),
        pytest.param("192.0.2.0/24", id="ipv4-cidr"),
        pytest.param("192.0.2.1/32", id="ipv4-host-prefix"),
        pytest.param("2001:db8::/32", id="ipv6-cidr"),
        pytest.param("[2001:db8::1]", id="bracketed-ipv6"),
        pytest.param("example.com", id="dns-name"),
        pytest.param("", id="empty"),
        pytest.param("192.0.2", id="three-octets"),
        pytest.param("192.0.2.1.5", id="five-octets"),
        pytest.param("192.0.2.256", id="octet-over-255"),
        pytest.param("010.0.0.1", id="leading-zero-octet"),
        pytest.param("0x7f.0.0.1", id="hex-octet"),
        pytest.param("3221225985", id="ipv4-as-one-integer"),
        pytest.param(" 192.0.2.1", id="leading-space"),
        pytest.param("192.0.2.1\n", id="trailing-newline"),
        pytest.param("2001:db8::1::2", id="two-double-colons"),
        pytest.param("2001:db8::g", id="non-hex-digit"),
        pytest.param("2001:db8:0:0:0:0:0:0:1", id="nine-groups"),
    ],
)
def test_parse_identifier_refuses_a_malformed_ip_address(value: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        parse_identifier(ip(value))
    assert excinfo.value.type is ProblemType.MALFORMED
    assert excinfo.value.identifier == ip(value)


# --- IdentifierPolicy ---

BLOCKED = ("example.org", "Blocked.TEST.")


@pytest.fixture
def policy() -> IdentifierPolicy:
    return IdentifierPolicy(BLOCKED, max_identifiers=5)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param([dns("example.com")], ["example.com"], id="one"),
        pytest.param(
            [dns("www.example.com"), dns("example.com")],
            ["example.com", "www.example.com"],
            id="sorted",
        ),
        pytest.param(
            [dns("Example.com"), dns("example.com"), dns("EXAMPLE.COM")],
            ["example.com"],
            id="duplicates-after-lowercasing",
        ),
        pytest.param(
            [dns("bücher.example"), dns("xn--bcher-kva.example")],
            ["xn--bcher-kva.example"],
            id="u-label-and-a-label-of-one-name",
        ),
        pytest.param([dns("app.test")], ["app.test"], id="private-tld-test"),
        pytest.param([dns("db.corp.internal")], ["db.corp.internal"], id="private-tld-internal"),
        pytest.param([dns("demo.localhost")], ["demo.localhost"], id="localhost-subdomain"),
        pytest.param([dns("notexample.org")], ["notexample.org"], id="blocked-only-by-label"),
        pytest.param([dns("example.org.uk")], ["example.org.uk"], id="blocked-name-as-prefix"),
        pytest.param([dns("unblocked.test")], ["unblocked.test"], id="blocked-only-by-label-2"),
    ],
)
def test_policy_accepts(policy: IdentifierPolicy, raw: list[Any], expected: list[str]) -> None:
    assert policy.check_order(raw) == [Identifier("dns", value) for value in expected]


@pytest.mark.parametrize(
    ("value", "suffix"),
    [
        pytest.param("example.org", "example.org", id="exact"),
        pytest.param("www.example.org", "example.org", id="subdomain"),
        pytest.param("a.b.c.Example.ORG", "example.org", id="deep-subdomain-mixed-case"),
        pytest.param("blocked.test", "blocked.test", id="suffix-given-mixed-case-and-dotted"),
        pytest.param("x.blocked.test", "blocked.test", id="subdomain-of-normalised-suffix"),
        pytest.param("*.example.org", "example.org", id="wildcard-over-the-suffix"),
        pytest.param("*.www.Example.org", "example.org", id="wildcard-under-the-suffix"),
    ],
)
def test_policy_refuses_blocked_names(policy: IdentifierPolicy, value: str, suffix: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([dns(value)])
    problem = excinfo.value
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert problem.identifier == dns(value.lower())
    assert suffix in problem.detail


# --- IdentifierPolicy: wildcards (authorized through dns-01 only) ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("*.example.test", "*.example.test", id="wildcard"),
        pytest.param("*.Example.COM", "*.example.com", id="wildcard-mixed-case"),
        pytest.param("*.app.test", "*.app.test", id="wildcard-private-tld"),
        pytest.param("*.Bücher.example", "*.xn--bcher-kva.example", id="wildcard-idna"),
        pytest.param("*.notexample.org", "*.notexample.org", id="wildcard-beside-a-blocked-name"),
    ],
)
def test_policy_accepts_a_wildcard(policy: IdentifierPolicy, value: str, expected: str) -> None:
    accepted = policy.check_order([dns(value)])
    assert accepted == [Identifier("dns", expected)]
    assert accepted[0].is_wildcard
    assert accepted[0].base == expected.removeprefix("*.")


def test_policy_keeps_a_wildcard_and_its_base_as_two_identifiers(
    policy: IdentifierPolicy,
) -> None:
    assert policy.check_order([dns("example.test"), dns("*.Example.test")]) == [
        Identifier("dns", "*.example.test"),
        Identifier("dns", "example.test"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("*.*.example.test", id="two-wildcard-labels"),
        pytest.param("a.*.example.test", id="wildcard-not-first"),
        pytest.param("*.test", id="wildcard-over-a-tld"),
        pytest.param("*.com", id="wildcard-over-com"),
        pytest.param("*", id="wildcard-alone"),
        pytest.param("*example.test", id="star-without-a-dot"),
        pytest.param("**.example.test", id="double-star"),
        pytest.param("w*.example.test", id="partial-label-wildcard"),
    ],
)
def test_policy_refuses_a_malformed_wildcard(policy: IdentifierPolicy, value: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([dns(value)])
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER
    assert excinfo.value.identifier == dns(value)


# --- IdentifierPolicy: IP addresses ---


@pytest.fixture
def lab_policy() -> IdentifierPolicy:
    return IdentifierPolicy(BLOCKED, max_identifiers=5, allow_private_ips=True)


PUBLIC_ADDRESSES = [
    pytest.param("8.8.8.8", "8.8.8.8", id="public-ipv4"),
    pytest.param("1.1.1.1", "1.1.1.1", id="public-ipv4-2"),
    pytest.param("2606:4700:4700::1111", "2606:4700:4700::1111", id="public-ipv6"),
    pytest.param(
        "2001:4860:4860:0:0:0:0:8888", "2001:4860:4860::8888", id="public-ipv6-canonicalised"
    ),
    pytest.param("2606:4700:4700::ABCD", "2606:4700:4700::abcd", id="public-ipv6-lowercased"),
]


@pytest.mark.parametrize(("value", "expected"), PUBLIC_ADDRESSES)
def test_policy_accepts_a_public_address(
    policy: IdentifierPolicy, value: str, expected: str
) -> None:
    assert policy.check_order([ip(value)]) == [Identifier("ip", expected)]


@pytest.mark.parametrize(("value", "expected"), PUBLIC_ADDRESSES)
def test_allow_private_ips_still_accepts_a_public_address(
    lab_policy: IdentifierPolicy, value: str, expected: str
) -> None:
    assert lab_policy.check_order([ip(value)]) == [Identifier("ip", expected)]


def test_policy_accepts_dns_and_ip_identifiers_in_one_order(policy: IdentifierPolicy) -> None:
    raw = [
        ip("2606:4700:4700:0:0:0:0:1111"),
        dns("Example.com"),
        ip("8.8.8.8"),
        ip("2606:4700:4700::1111"),
    ]
    assert policy.check_order(raw) == [
        Identifier("dns", "example.com"),
        Identifier("ip", "2606:4700:4700::1111"),
        Identifier("ip", "8.8.8.8"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("10.1.2.3", id="private-10/8"),
        pytest.param("172.16.0.1", id="private-172.16/12"),
        pytest.param("192.168.1.1", id="private-192.168/16"),
        pytest.param("127.0.0.1", id="loopback-ipv4"),
        pytest.param("127.0.0.2", id="loopback-ipv4-beyond-dot-1"),
        pytest.param("169.254.1.1", id="link-local-ipv4"),
        pytest.param("100.64.0.1", id="shared-address-space"),
        pytest.param("192.0.2.1", id="documentation-ipv4"),
        pytest.param("198.18.0.1", id="benchmarking-ipv4"),
        pytest.param("::1", id="loopback-ipv6"),
        pytest.param("fd00::1", id="unique-local-ipv6"),
        pytest.param("fe80::1", id="link-local-ipv6"),
        pytest.param("2001:db8::1", id="documentation-ipv6"),
    ],
)
def test_policy_refuses_a_non_public_address(policy: IdentifierPolicy, value: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([ip(value)])
    problem = excinfo.value
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert problem.identifier == ip(value)
    assert "--allow-private-ips" in problem.detail


def test_policy_names_a_refused_address_in_canonical_form(policy: IdentifierPolicy) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([ip("FD00:0:0:0:0:0:0:1")])
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER
    assert excinfo.value.identifier == ip("fd00::1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("127.0.0.2", "127.0.0.2", id="loopback-ipv4"),
        pytest.param("::1", "::1", id="loopback-ipv6"),
        pytest.param("0:0:0:0:0:0:0:1", "::1", id="loopback-ipv6-canonicalised"),
        pytest.param("10.1.2.3", "10.1.2.3", id="private-ipv4"),
        pytest.param("192.168.1.1", "192.168.1.1", id="private-ipv4-192.168"),
        pytest.param("fd00::1", "fd00::1", id="unique-local-ipv6"),
        pytest.param("169.254.1.1", "169.254.1.1", id="link-local-ipv4"),
        pytest.param("fe80::1", "fe80::1", id="link-local-ipv6"),
    ],
)
def test_allow_private_ips_accepts_a_non_public_address(
    lab_policy: IdentifierPolicy, value: str, expected: str
) -> None:
    assert lab_policy.check_order([ip(value)]) == [Identifier("ip", expected)]


@pytest.mark.parametrize(
    "allow_private_ips",
    [pytest.param(False, id="default"), pytest.param(True, id="allow-private-ips")],
)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("224.0.0.1", id="multicast-ipv4-local"),
        pytest.param("239.255.255.250", id="multicast-ipv4-admin-scoped"),
        pytest.param("ff02::1", id="multicast-ipv6-link-local"),
        pytest.param("ff0e::1", id="multicast-ipv6-global"),
        pytest.param(UNSPECIFIED_IPV4, id="unspecified-ipv4"),
        pytest.param("::", id="unspecified-ipv6"),
    ],
)
def test_policy_always_refuses_multicast_and_unspecified(
    value: str, allow_private_ips: bool
) -> None:
    policy = IdentifierPolicy(BLOCKED, max_identifiers=5, allow_private_ips=allow_private_ips)
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([ip(value)])
    problem = excinfo.value
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert problem.identifier == ip(value)
    assert "multicast and unspecified" in problem.detail


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("192.0.2.0/24", id="cidr"),
        pytest.param("fe80::1%eth0", id="zone-id"),
    ],
)
def test_policy_refuses_a_malformed_address_naming_it(
    lab_policy: IdentifierPolicy, value: str
) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        lab_policy.check_order([dns("example.com"), ip(value)])
    assert excinfo.value.type is ProblemType.MALFORMED
    assert excinfo.value.identifier == ip(value)
    assert excinfo.value.subproblems == []


# --- IdentifierPolicy: blocked suffixes ---


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        pytest.param("example.org", "example.org", id="already-normal"),
        pytest.param(".Blocked.TEST.", "blocked.test", id="dots-and-case"),
        pytest.param("internal", "internal", id="single-label"),
        pytest.param("Bücher.example", "xn--bcher-kva.example", id="u-label-to-a-label"),
        pytest.param("XN--BCHER-KVA.example", "xn--bcher-kva.example", id="uppercase-a-label"),
    ],
)
def test_normalise_suffix(suffix: str, expected: str) -> None:
    assert normalise_suffix(suffix) == expected


@pytest.mark.parametrize(
    "suffix",
    [
        pytest.param("", id="empty"),
        pytest.param(".", id="dot"),
        pytest.param("a..example", id="empty-label"),
        pytest.param("bad_name.example", id="underscore"),
        pytest.param("-x.example", id="leading-hyphen"),
        pytest.param("xn--zz.example", id="invalid-a-label"),
        pytest.param("💩.example", id="emoji-u-label"),
        pytest.param("ex ample.test", id="space"),
        pytest.param("example.org\n", id="trailing-newline"),
    ],
)
def test_policy_refuses_a_malformed_suffix_at_construction(suffix: str) -> None:
    with pytest.raises(ValueError, match="blocked suffix"):
        IdentifierPolicy(("example.org", suffix), max_identifiers=5)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("bücher.example", id="u-label"),
        pytest.param("xn--bcher-kva.example", id="a-label"),
        pytest.param("shop.xn--bcher-kva.example", id="a-label-subdomain"),
        pytest.param("*.Bücher.example", id="wildcard-u-label"),
    ],
)
def test_policy_blocks_a_unicode_suffix(value: str) -> None:
    policy = IdentifierPolicy(("Bücher.example",), max_identifiers=5)
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([dns(value)])
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER
    assert "xn--bcher-kva.example" in excinfo.value.detail


def test_policy_blocks_a_blocked_name_with_a_trailing_newline(policy: IdentifierPolicy) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([dns("www.example.org\n")])
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER
    assert excinfo.value.identifier == dns("www.example.org\n")


# --- IdentifierPolicy: the order as a whole ---


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([], id="empty-list"),
        pytest.param(None, id="missing"),
        pytest.param(dns("example.com"), id="object-not-list"),
        pytest.param("example.com", id="string"),
        pytest.param([dns("example.com"), "example.net"], id="one-entry-not-an-object"),
    ],
)
def test_policy_refuses_a_malformed_identifier_list(policy: IdentifierPolicy, raw: Any) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order(raw)
    assert excinfo.value.type is ProblemType.MALFORMED
    assert excinfo.value.subproblems == []


def test_policy_refuses_more_identifiers_than_allowed(policy: IdentifierPolicy) -> None:
    names = [dns(f"n{i}.example.com") for i in range(6)]
    assert len(policy.check_order(names[:5])) == 5
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order(names)
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER


def test_policy_refuses_a_type_other_than_dns_or_ip_as_unsupported(
    policy: IdentifierPolicy,
) -> None:
    email = {"type": "email", "value": "a@example.com"}
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([dns("example.com"), ip("8.8.8.8"), email])
    assert excinfo.value.type is ProblemType.UNSUPPORTED_IDENTIFIER
    assert excinfo.value.identifier == email
    assert excinfo.value.subproblems == []


def test_policy_reports_every_bad_identifier_as_a_subproblem() -> None:
    bad = [
        dns("a_b.example"),
        dns("www.example.org"),
        dns("*.*.example.com"),
        dns("example.com."),
        ip("10.0.0.1"),
    ]
    raw = [dns("good.example.com"), dns("*.good.example.com"), ip("8.8.8.8")]
    with pytest.raises(AcmeProblem) as excinfo:
        IdentifierPolicy(BLOCKED, max_identifiers=8).check_order([*raw, *bad])
    problem = excinfo.value
    assert problem.type is ProblemType.REJECTED_IDENTIFIER
    assert problem.identifier is None
    assert [sub.identifier for sub in problem.subproblems] == bad
    assert all(sub.type is ProblemType.REJECTED_IDENTIFIER for sub in problem.subproblems)
    document = problem.to_dict()
    assert [sub["identifier"] for sub in document["subproblems"]] == bad
    assert all(sub["type"].endswith(":rejectedIdentifier") for sub in document["subproblems"])


def test_policy_reports_mixed_failures_as_compound(policy: IdentifierPolicy) -> None:
    email = {"type": "email", "value": "a@example.com"}
    raw = [dns("-bad.example"), dns("good.example.com"), email, ip("192.0.2.0/24")]
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order(raw)
    problem = excinfo.value
    assert problem.type is ProblemType.COMPOUND
    assert problem.identifier is None
    assert [(s.type, s.identifier) for s in problem.subproblems] == [
        (ProblemType.REJECTED_IDENTIFIER, dns("-bad.example")),
        (ProblemType.UNSUPPORTED_IDENTIFIER, email),
        (ProblemType.MALFORMED, ip("192.0.2.0/24")),
    ]
    document = problem.to_dict()
    assert document["type"].endswith(":compound")
    assert [sub["type"].rsplit(":", 1)[1] for sub in document["subproblems"]] == [
        "rejectedIdentifier",
        "unsupportedIdentifier",
        "malformed",
    ]


@pytest.mark.parametrize(
    "allow_private_ips",
    [pytest.param(False, id="default"), pytest.param(True, id="allow-private-ips")],
)
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("240.0.0.1", id="reserved-ipv4"),
        pytest.param("255.255.255.255", id="limited-broadcast"),
    ],
)
def test_policy_always_refuses_reserved_ipv4(value: str, allow_private_ips: bool) -> None:
    policy = IdentifierPolicy(BLOCKED, max_identifiers=5, allow_private_ips=allow_private_ips)
    with pytest.raises(AcmeProblem) as excinfo:
        policy.check_order([ip(value)])
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER
    assert excinfo.value.identifier == ip(value)
    assert "reserved IPv4" in excinfo.value.detail


@pytest.mark.parametrize(
    "value",
    [pytest.param("::ffff:8.8.8.8", id="public"), pytest.param("::ffff:10.0.0.1", id="private")],
)
def test_policy_refuses_ipv4_mapped_ipv6(lab_policy: IdentifierPolicy, value: str) -> None:
    with pytest.raises(AcmeProblem) as excinfo:
        lab_policy.check_order([ip(value)])
    assert excinfo.value.type is ProblemType.REJECTED_IDENTIFIER
    assert "IPv4 identifier" in excinfo.value.detail
