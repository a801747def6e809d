"""dns-01 validation (RFC 8555 §8.4) against real DNS servers on loopback."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import pytest

from certsmith.acme.challenges import dns01_txt_value
from certsmith.acme.problems import AcmeProblem, ProblemType
from certsmith.server.validation.dns01 import Dns01Validator
from tests.support import ChallTestSrv
from tests.unit.va_support import (
    KEY_AUTHORIZATION,
    OTHER_KEY_AUTHORIZATION,
    ChallTestSrvApi,
    dns_server,
    unique_name,
)

GOOD = dns01_txt_value(KEY_AUTHORIZATION)
STALE = dns01_txt_value(OTHER_KEY_AUTHORIZATION)


@pytest.fixture
async def api(challtestsrv: ChallTestSrv) -> AsyncIterator[ChallTestSrvApi]:
    api = ChallTestSrvApi(challtestsrv.management_port)
    yield api
    await api.aclose()


@pytest.fixture
def validator(challtestsrv: ChallTestSrv) -> Dns01Validator:
    return Dns01Validator(("127.0.0.1", challtestsrv.dns_port), timeout=5.0)


async def expect_problem(
    validator: Dns01Validator, name: str, kind: ProblemType, key_authorization: str
) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as caught:
        await validator.validate(name, key_authorization)
    problem = caught.value
    assert problem.type is kind, problem.detail
    assert problem.identifier == {"type": "dns", "value": name}
    return problem


def test_txt_value_is_unpadded_base64url_sha256() -> None:
    # RFC 8555 §8.4: 32 bytes of digest are 43 base64url characters without padding.
    assert len(GOOD) == 43
    assert "=" not in GOOD and "+" not in GOOD and "/" not in GOOD
    assert dns01_txt_value("a") == "ypeBEsobvcr6wjGzmiPcTaeG7_gUfE5yuYB3ha_uSLs"


async def test_matching_record(
    api: ChallTestSrvApi, validator: Dns01Validator, challtestsrv: ChallTestSrv
) -> None:
    name = unique_name()
    await api.set_txt(f"_acme-challenge.{name}", GOOD)
    record = await validator.validate(name, KEY_AUTHORIZATION)
    assert record == {
        "hostname": name,
        "txtName": f"_acme-challenge.{name}",
        "resolver": challtestsrv.dns_server,
    }


async def test_wildcard_prefix_is_dropped(api: ChallTestSrvApi, validator: Dns01Validator) -> None:
    name = unique_name()
    await api.set_txt(f"_acme-challenge.{name}", GOOD)
    record = await validator.validate(f"*.{name}", KEY_AUTHORIZATION)
    assert record["txtName"] == f"_acme-challenge.{name}"


async def test_one_of_several_records_matches(
    api: ChallTestSrvApi, validator: Dns01Validator
) -> None:
    # A wildcard and its base name put their records at the same name.
    name = unique_name()
    await api.set_txt(f"_acme-challenge.{name}", STALE)
    await api.set_txt(f"_acme-challenge.{name}", GOOD)
    await api.set_txt(f"_acme-challenge.{name}", "unrelated")
    await validator.validate(name, KEY_AUTHORIZATION)


async def test_wrong_value(api: ChallTestSrvApi, validator: Dns01Validator) -> None:
    name = unique_name()
    await api.set_txt(f"_acme-challenge.{name}", STALE)
    await api.set_txt(f"_acme-challenge.{name}", "short")
    problem = await expect_problem(validator, name, ProblemType.UNAUTHORIZED, KEY_AUTHORIZATION)
    assert f"_acme-challenge.{name}" in problem.detail
    assert ": 2 found, none with the expected value" in problem.detail
    # Values are shown by a short prefix only.
    assert STALE[:8] in problem.detail and STALE not in problem.detail
    assert "'short'" in problem.detail
    assert GOOD not in problem.detail


async def test_no_record(validator: Dns01Validator) -> None:
    name = unique_name()
    problem = await expect_problem(validator, name, ProblemType.UNAUTHORIZED, KEY_AUTHORIZATION)
    assert problem.detail == f"No TXT record found at _acme-challenge.{name}"


async def test_nxdomain() -> None:
    name = unique_name()
    async with dns_server({}) as server:
        validator = Dns01Validator(server, timeout=5.0)
        problem = await expect_problem(validator, name, ProblemType.UNAUTHORIZED, KEY_AUTHORIZATION)
    assert problem.detail == f"No TXT record found at _acme-challenge.{name}"


async def test_cname_is_followed(api: ChallTestSrvApi, validator: Dns01Validator) -> None:
    # Delegating _acme-challenge to another zone by CNAME is common (RFC 8555 §8.4 allows
    # whatever the DNS returns for the name).
    name, target = unique_name(), unique_name("delegated")
    await api.set_cname(f"_acme-challenge.{name}", f"_acme-challenge.{target}")
    await api.set_txt(f"_acme-challenge.{target}", GOOD)
    record = await validator.validate(name, KEY_AUTHORIZATION)
    assert record["cname"] == f"_acme-challenge.{target}"


async def test_cname_chain_of_two_is_followed() -> None:
    zone = {
        "_acme-challenge.a.test.": ["CNAME hop.b.test."],
        "hop.b.test.": ["CNAME end.c.test."],
        "end.c.test.": [f'TXT "{GOOD}"'],
    }
    async with dns_server(zone) as server:
        record = await Dns01Validator(server, timeout=5.0).validate("a.test", KEY_AUTHORIZATION)
    assert record["cname"] == "end.c.test"
    assert record["resolver"] == f"{server[0]}:{server[1]}"


async def test_cname_to_wrong_value() -> None:
    zone = {
        "_acme-challenge.a.test.": ["CNAME end.c.test."],
        "end.c.test.": [f'TXT "{STALE}"'],
    }
    async with dns_server(zone) as server:
        validator = Dns01Validator(server, timeout=5.0)
        problem = await expect_problem(
            validator, "a.test", ProblemType.UNAUTHORIZED, KEY_AUTHORIZATION
        )
    assert problem.detail == (
        "Incorrect TXT record at _acme-challenge.a.test: 1 record found, without the "
        f"expected value ({STALE[:8]!r}…)"
    )


async def test_many_wrong_records_are_summarised() -> None:
    zone = {"_acme-challenge.many.test.": [f'TXT "stale-{i}"' for i in range(5)]}
    async with dns_server(zone) as server:
        validator = Dns01Validator(server, timeout=5.0)
        problem = await expect_problem(
            validator, "many.test", ProblemType.UNAUTHORIZED, KEY_AUTHORIZATION
        )
    assert ": 5 found, none with the expected value (" in problem.detail
    assert problem.detail.endswith(" and 2 more)")


async def test_multi_string_record_is_concatenated() -> None:
    zone = {
        "_acme-challenge.multi.test.": [f'TXT "{GOOD[:20]}" "{GOOD[20:]}"'],
        "_acme-challenge.spaced.test.": [f'TXT "{GOOD[:20]}" " {GOOD[20:]}"'],
    }
    async with dns_server(zone) as server:
        validator = Dns01Validator(server, timeout=5.0)
        await validator.validate("multi.test", KEY_AUTHORIZATION)
        # Strings join with nothing between them, so a stray space is a wrong value.
        await expect_problem(validator, "spaced.test", ProblemType.UNAUTHORIZED, KEY_AUTHORIZATION)


async def test_servfail(api: ChallTestSrvApi, validator: Dns01Validator) -> None:
    name = unique_name()
    await api.set_servfail(f"_acme-challenge.{name}")
    problem = await expect_problem(validator, name, ProblemType.DNS, KEY_AUTHORIZATION)
    assert problem.detail == f"DNS problem: SERVFAIL looking up TXT for _acme-challenge.{name}"
    assert "127.0.0.1" not in problem.detail


async def test_timeout() -> None:
    # A bound UDP socket that never reads: queries vanish, as behind a dropping firewall
    # (an unbound port would answer with ICMP "unreachable" at once).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        validator = Dns01Validator(silent.getsockname(), timeout=0.5)
        started = time.monotonic()
        problem = await expect_problem(validator, "x.test", ProblemType.DNS, KEY_AUTHORIZATION)
        elapsed = time.monotonic() - started
    assert problem.detail == "DNS query for TXT at _acme-challenge.x.test timed out after 0.5s"
    assert elapsed < 3


async def test_name_too_long_to_query(validator: Dns01Validator) -> None:
    # 4 labels of 63 octets are 256 octets of wire name, over the 255 limit once prefixed.
    name = ".".join(["a" * 63] * 3 + ["b" * 60])
    problem = await expect_problem(validator, name, ProblemType.DNS, KEY_AUTHORIZATION)
    assert problem.detail.startswith(f"cannot query _acme-challenge.{name}")
