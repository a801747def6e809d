"""dns-01 solvers against real DNS servers: pebble-challtestsrv, BIND 9, the certsmith CA."""

from __future__ import annotations

import logging
import shlex
import ssl
import sys
import time
import uuid
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from cryptography import x509
from joserfc import jwk

from certsmith.acme.challenges import dns01_txt_value
from certsmith.acme.identifiers import Identifier
from certsmith.acme.keys import generate_private_key
from certsmith.client.account import register
from certsmith.client.issuance import obtain
from certsmith.client.session import AcmeClientError, AcmeSession
from certsmith.client.solvers.dns01 import HookDns01, Rfc2136Dns01
from tests.client.bind9 import CHILD_ZONE, KEY_NAME, ZONE, Bind9
from tests.support import CaServer, ChallTestSrv

KEY_AUTHORIZATION = "token-one.thumbprint"
OTHER_KEY_AUTHORIZATION = "token-two.thumbprint"

# Publishes through challtestsrv's management API; http.client, not urllib, so that no
# proxy from the environment gets in the way. Every call is appended to SCRIPT.calls.
CHALLTESTSRV_HOOK = """
import http.client, json, sys
port, action, record, value = sys.argv[1:]
with open(sys.argv[0] + ".calls", "a") as calls:
    calls.write(f"{action} {record} {value}\\n")
body = {"host": record, "value": value} if action == "present" else {"host": record}
connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
connection.request("POST", "/set-txt" if action == "present" else "/clear-txt", json.dumps(body))
sys.exit(0 if connection.getresponse().status == 200 else 1)
"""
FAILING_HOOK = """
import sys
print("some progress on stdout")
print("zone example.invalid is not managed here", file=sys.stderr)
sys.exit(1)
"""
SILENT_HOOK = "pass\n"
# Leaves a grandchild holding the pipes, as a shell script running a slow tool would.
HANGING_HOOK = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[0] + ".child", "w") as pid:
    pid.write(str(child.pid))
time.sleep(60)
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def dns_identifier(name: str) -> dict[str, str]:
    return {"type": "dns", "value": name}


def hook_command(tmp_path: Path, source: str, *args: str) -> tuple[str, Path]:
    script = tmp_path / "hook.py"
    script.write_text(source)
    return shlex.join([sys.executable, str(script), *args]), script


def txt_values(server: tuple[str, int], record: str) -> tuple[str, set[str]]:
    """The rcode and TXT values the server itself answers for `record`."""
    query = dns.message.make_query(record, dns.rdatatype.TXT)
    response = dns.query.udp(query, server[0], port=server[1], timeout=3)
    values = {
        b"".join(rdata.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    }
    return dns.rcode.to_text(response.rcode()), values


def is_gone(pid: int) -> bool:
    """True once `pid` has exited; a zombie counts, as a container's init may not reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


# --- the hook solver, with pebble-challtestsrv as the DNS server -------------------------


@pytest.fixture
def challtestsrv_resolver(challtestsrv: ChallTestSrv) -> tuple[str, int]:
    return ("127.0.0.1", challtestsrv.dns_port)


async def test_hook_present_waits_until_visible_and_cleanup_clears(
    tmp_path: Path, challtestsrv: ChallTestSrv, challtestsrv_resolver: tuple[str, int]
) -> None:
    name = unique("hook") + ".test"
    record = f"_acme-challenge.{name}."
    value = dns01_txt_value(KEY_AUTHORIZATION)
    command, script = hook_command(tmp_path, CHALLTESTSRV_HOOK, str(challtestsrv.management_port))
    async with HookDns01(command, challtestsrv_resolver, 10.0) as solver:
        await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
        assert txt_values(challtestsrv_resolver, record)[1] == {value}
        await solver.cleanup(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    assert txt_values(challtestsrv_resolver, record)[1] == set()
    calls = script.with_name("hook.py.calls").read_text().splitlines()
    assert calls == [f"present {record} {value}", f"cleanup {record} {value}"]


async def test_hook_values_sharing_a_record_are_all_waited_for(
    tmp_path: Path, challtestsrv: ChallTestSrv, challtestsrv_resolver: tuple[str, int]
) -> None:
    # A wildcard's authorization carries its base name, so both land on one record.
    name = unique("pair") + ".test"
    command, _ = hook_command(tmp_path, CHALLTESTSRV_HOOK, str(challtestsrv.management_port))
    solver = HookDns01(command, challtestsrv_resolver, 10.0)
    await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    await solver.present(dns_identifier(name), "token-two", OTHER_KEY_AUTHORIZATION)
    assert txt_values(challtestsrv_resolver, f"_acme-challenge.{name}.")[1] == {
        dns01_txt_value(KEY_AUTHORIZATION),
        dns01_txt_value(OTHER_KEY_AUTHORIZATION),
    }
    challtestsrv.clear_txt(f"_acme-challenge.{name}.")


async def test_hook_failure_reports_its_stderr(
    tmp_path: Path, challtestsrv_resolver: tuple[str, int]
) -> None:
    command, _ = hook_command(tmp_path, FAILING_HOOK)
    solver = HookDns01(command, challtestsrv_resolver, 5.0)
    with pytest.raises(AcmeClientError) as caught:
        await solver.present(dns_identifier("fail.test"), "token-one", KEY_AUTHORIZATION)
    message = str(caught.value)
    assert "exited with status 1" in message
    assert "present _acme-challenge.fail.test." in message
    assert "zone example.invalid is not managed here" in message
    assert "progress" not in message


async def test_hook_value_never_visible_times_out_naming_the_record(
    tmp_path: Path, challtestsrv_resolver: tuple[str, int]
) -> None:
    name = unique("silent") + ".test"
    command, _ = hook_command(tmp_path, SILENT_HOOK)
    solver = HookDns01(command, challtestsrv_resolver, 1.0)
    started = time.monotonic()
    with pytest.raises(AcmeClientError) as caught:
        await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    assert time.monotonic() - started < 5
    assert str(caught.value).startswith(
        f"DNS record _acme-challenge.{name}. not visible on "
        f"127.0.0.1:{challtestsrv_resolver[1]} after 1s"
    )


async def test_hook_that_hangs_is_killed_with_its_children(
    tmp_path: Path, challtestsrv_resolver: tuple[str, int]
) -> None:
    command, script = hook_command(tmp_path, HANGING_HOOK)
    solver = HookDns01(command, challtestsrv_resolver, 5.0, hook_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(AcmeClientError, match=r"did not finish within 1s"):
        await solver.present(dns_identifier("hang.test"), "token-one", KEY_AUTHORIZATION)
    assert time.monotonic() - started < 4
    assert is_gone(int(script.with_name("hook.py.child").read_text()))


async def test_hook_cleanup_failure_only_warns(
    tmp_path: Path, challtestsrv_resolver: tuple[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    command, _ = hook_command(tmp_path, FAILING_HOOK)
    solver = HookDns01(command, challtestsrv_resolver, 5.0)
    with caplog.at_level(logging.WARNING, logger="certsmith.client.solvers.dns01"):
        await solver.cleanup(dns_identifier("fail.test"), "token-one", KEY_AUTHORIZATION)
    assert "zone example.invalid is not managed here" in caplog.text


async def test_hook_missing_program_is_a_client_error(
    tmp_path: Path, challtestsrv_resolver: tuple[str, int]
) -> None:
    solver = HookDns01(str(tmp_path / "no-such-hook"), challtestsrv_resolver, 5.0)
    with pytest.raises(AcmeClientError, match=r"cannot run the dns hook"):
        await solver.present(dns_identifier("x.test"), "token-one", KEY_AUTHORIZATION)


# --- RFC 2136 updates against BIND 9 --------------------------------------------------------


def rfc2136(bind9: Bind9, **overrides: object) -> Rfc2136Dns01:
    options: dict[str, object] = {
        "server": bind9.server,
        "tsig_name": KEY_NAME,
        "tsig_secret": bind9.secret,
        "tsig_algorithm": "hmac-sha256",
        "zone": None,
        "resolver": None,
        "propagation_timeout": 5.0,
    }
    options.update(overrides)
    return Rfc2136Dns01(**options)  # type: ignore[arg-type]


async def test_rfc2136_present_adds_and_cleanup_deletes(bind9: Bind9) -> None:
    name = f"{unique('add')}.{ZONE}"
    record = f"_acme-challenge.{name}."
    async with rfc2136(bind9, zone=ZONE) as solver:
        await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
        assert txt_values(bind9.server, record) == ("NOERROR", {dns01_txt_value(KEY_AUTHORIZATION)})
        await solver.cleanup(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    assert txt_values(bind9.server, record) == ("NXDOMAIN", set())


async def test_rfc2136_cleanup_deletes_only_its_own_value(bind9: Bind9) -> None:
    name = f"{unique('pair')}.{ZONE}"
    record = f"_acme-challenge.{name}."
    solver = rfc2136(bind9)
    await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    await solver.present(dns_identifier(name), "token-two", OTHER_KEY_AUTHORIZATION)
    await solver.cleanup(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    assert txt_values(bind9.server, record)[1] == {dns01_txt_value(OTHER_KEY_AUTHORIZATION)}
    await solver.cleanup(dns_identifier(name), "token-two", OTHER_KEY_AUTHORIZATION)
    assert txt_values(bind9.server, record)[1] == set()


async def test_rfc2136_zone_found_at_the_nearest_apex(bind9: Bind9) -> None:
    name = f"a.{unique('deep')}.{CHILD_ZONE}"
    solver = rfc2136(bind9)
    await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    # named names the zone each update went to.
    assert f"updating zone '{CHILD_ZONE}/IN': adding an RR at '_acme-challenge.{name}'" in (
        bind9.log()
    )
    await solver.cleanup(dns_identifier(name), "token-one", KEY_AUTHORIZATION)


async def test_rfc2136_zone_given_explicitly(bind9: Bind9) -> None:
    name = f"{unique('given')}.{ZONE}"
    solver = rfc2136(bind9, zone=f"{ZONE}.")
    await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    assert f"updating zone '{ZONE}/IN': adding an RR at '_acme-challenge.{name}'" in bind9.log()
    await solver.cleanup(dns_identifier(name), "token-one", KEY_AUTHORIZATION)


async def test_rfc2136_record_outside_the_given_zone(bind9: Bind9) -> None:
    solver = rfc2136(bind9, zone=ZONE)
    with pytest.raises(AcmeClientError, match=r"is not in the zone example\.test\."):
        await solver.present(dns_identifier("other.test"), "token-one", KEY_AUTHORIZATION)


async def test_rfc2136_no_zone_on_the_server(bind9: Bind9) -> None:
    solver = rfc2136(bind9)
    with pytest.raises(AcmeClientError, match=r"serves no zone above _acme-challenge\.x\.invalid"):
        await solver.present(dns_identifier("x.invalid"), "token-one", KEY_AUTHORIZATION)


async def test_rfc2136_wrong_secret(bind9: Bind9) -> None:
    solver = rfc2136(bind9, tsig_secret="c2VjcmV0IGtub3duIHRvIG5vYm9keSBhdCBhbGwh")
    name = f"{unique('badsig')}.{ZONE}"
    with pytest.raises(AcmeClientError, match=r"NOTAUTH/BADSIG") as caught:
        await solver.present(dns_identifier(name), "token-one", KEY_AUTHORIZATION)
    assert f"127.0.0.1:{bind9.port}" in str(caught.value)
    assert txt_values(bind9.server, f"_acme-challenge.{name}.")[1] == set()


async def test_rfc2136_unknown_key_name(bind9: Bind9) -> None:
    solver = rfc2136(bind9, tsig_name="someone-else")
    with pytest.raises(AcmeClientError, match=r"NOTAUTH/BADKEY"):
        await solver.present(dns_identifier(f"badkey.{ZONE}"), "token-one", KEY_AUTHORIZATION)


async def test_rfc2136_unsigned_update_is_refused(bind9: Bind9) -> None:
    solver = rfc2136(bind9, tsig_name=None, tsig_secret=None)
    with pytest.raises(AcmeClientError, match=r"failed: REFUSED"):
        await solver.present(dns_identifier(f"unsigned.{ZONE}"), "token-one", KEY_AUTHORIZATION)


async def test_rfc2136_cleanup_failure_only_warns(
    bind9: Bind9, caplog: pytest.LogCaptureFixture
) -> None:
    solver = rfc2136(bind9, tsig_secret="c2VjcmV0IGtub3duIHRvIG5vYm9keSBhdCBhbGwh")
    with caplog.at_level(logging.WARNING, logger="certsmith.client.solvers.dns01"):
        await solver.cleanup(dns_identifier(f"gone.{ZONE}"), "token-one", KEY_AUTHORIZATION)
    assert "BADSIG" in caplog.text


def test_rfc2136_refuses_bad_tsig_settings() -> None:
    server = ("127.0.0.1", 53)
    with pytest.raises(AcmeClientError, match="both a key name and a secret"):
        Rfc2136Dns01(server, "k", None, "hmac-sha256", None, None, 1.0)
    with pytest.raises(AcmeClientError, match="unsupported TSIG algorithm 'hmac-md5'"):
        Rfc2136Dns01(server, "k", "c2VjcmV0", "hmac-md5", None, None, 1.0)
    with pytest.raises(AcmeClientError, match="not base64"):
        Rfc2136Dns01(server, "k", "not base64!", "hmac-sha256", None, None, 1.0)


# --- end to end: a wildcard and its base name from the certsmith CA ------------------------


async def test_obtain_wildcard_and_base_with_hook(
    tmp_path: Path, ca_server: CaServer, challtestsrv: ChallTestSrv
) -> None:
    command, script = hook_command(tmp_path, CHALLTESTSRV_HOOK, str(challtestsrv.management_port))
    solver = HookDns01(command, ("127.0.0.1", challtestsrv.dns_port), 10.0)
    key = generate_private_key("ec256")
    verify = ssl.create_default_context(cafile=str(ca_server.root))
    async with AcmeSession(
        ca_server.directory, jwk.ECKey.generate_key("P-256"), verify=verify
    ) as s:
        await register(s, agree_tos=True)
        chain = await obtain(
            s,
            [Identifier("dns", "*.hook.test"), Identifier("dns", "hook.test")],
            [solver],
            key=key,
        )
    leaf, *issuers = x509.load_pem_x509_certificates(chain.encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["*.hook.test", "hook.test"]
    assert leaf.public_key() == key.public_key()
    assert issuers and leaf.issuer == issuers[0].subject
    # Both authorizations were answered at the one record, each with its own value.
    calls = script.with_name("hook.py.calls").read_text().splitlines()
    presented = [c.split() for c in calls if c.startswith("present ")]
    assert [record for _, record, _ in presented] == ["_acme-challenge.hook.test."] * 2
    assert len({value for _, _, value in presented}) == 2
