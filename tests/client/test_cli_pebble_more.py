"""More of the client's CLI against Pebble: dns-01 through RFC 2136 updates to a real
`named` that Pebble itself asks, and `certsmith renew` of Pebble's certificates."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from cryptography import x509

from tests.client.bind9 import KEY_NAME, ZONE, Bind9
from tests.client.cli_support import Client, check_stored, domains, standalone, verify
from tests.client.pebble import Pebble
from tests.client.test_cli_pebble import pebble_ca

pytestmark = pytest.mark.interop

# A fixture of pebble.py that conftest.py does not import; named here so pytest finds it.


def txt_answer(bind9: Bind9, record: str) -> tuple[str, list[str]]:
    """The rcode and TXT values named itself answers for `record`."""
    host, port = bind9.server
    response = dns.query.udp(dns.message.make_query(record, dns.rdatatype.TXT), host, port=port)
    values = [
        b"".join(rdata.strings).decode()
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rdata in rrset
    ]
    return dns.rcode.to_text(response.rcode()), values


def test_rfc2136_wildcard_validated_by_pebble_through_named(
    pebble_bind9: Pebble, bind9: Bind9, tmp_path: Path
) -> None:
    client = Client(pebble_ca(pebble_bind9), tmp_path / "config")
    base = f"rfc.{ZONE}"
    record = f"_acme-challenge.{base}."
    assert txt_answer(bind9, record) == ("NXDOMAIN", [])
    named = f"127.0.0.1:{bind9.port}"
    out = client.issue(
        "--agree-tos",
        *("--rfc2136-server", named),
        *("--rfc2136-tsig-name", KEY_NAME),
        *("--rfc2136-tsig-secret", bind9.secret),
        *("--dns-resolver", named),
        *("--dns-timeout", "10"),
        *domains(f"*.{base}", base),
    )
    live = client.config_dir / "live" / base
    assert out.strip() == f"certificate for *.{base}, {base} in {live}"

    fullchain = check_stored(client.config_dir, base)
    leaf = verify(fullchain, pebble_bind9.root, base)
    verify(fullchain, pebble_bind9.root, f"anything.{base}")
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == sorted([f"*.{base}", base])

    # Both values went in through TSIG-signed updates to the zone found on the server, and
    # both came out again: named has nothing left at the record.
    log = bind9.log()
    where = f"updating zone '{ZONE}/IN'"
    assert log.count(f"{where}: adding an RR at '_acme-challenge.{base}' TXT") == 2, log
    assert log.count(f"{where}: deleting an RR at _acme-challenge.{base} TXT") == 2, log
    assert txt_answer(bind9, record) == ("NXDOMAIN", [])

    # The renewal configuration holds the TSIG secret, so only its owner may read it.
    renewal = client.config_dir / "renewal" / f"{base}.json"
    assert stat.S_IMODE(renewal.stat().st_mode) == 0o600
    update = json.loads(renewal.read_text())["solvers"]["rfc2136"]
    assert (update["server"], update["tsig_name"]) == (named, KEY_NAME)


def test_renew_forced_against_pebble(pebble: Pebble, tmp_path: Path) -> None:
    client = Client(pebble_ca(pebble), tmp_path / "config")
    store = client.config_dir
    names = ["renew-one", "renew-two"]
    first: dict[str, x509.Certificate] = {}
    for name in names:
        domain = f"{name}.pebble.test"
        client.issue(*standalone(client.ca), "--agree-tos", "--cert-name", name, "-d", domain)
        first[name] = verify(check_stored(store, name), pebble.root, domain)

    result = client.run("renew", "--config-dir", str(store))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in names:
        assert re.search(rf"^{name} not due until \S+ \S+ UTC \(", result.stdout, re.M), result
        assert os.readlink(store / "live" / name) == f"../archive/{name}/1"
    assert result.stdout.splitlines()[-1] == "summary: 2 not due, 0 failed"

    result = client.run("renew", "--config-dir", str(store), "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    out = [line for line in result.stdout.splitlines() if line.strip()]
    assert out[-1] == "summary: 2 renewed, 0 failed", out
    # Both answer on Pebble's one http-01 port through one shared responder: both start
    # before either is done.
    assert [line.split()[0] for line in out[:-1]] == ["renewing"] * 2 + ["renewed"] * 2, out
    assert {line for line in out if line.startswith("renewing ")} == {
        f"renewing {name} (forced)" for name in names
    }, out
    for name in names:
        assert os.readlink(store / "live" / name) == f"../archive/{name}/2"
        renewed = verify(check_stored(store, name), pebble.root, f"{name}.pebble.test")
        assert renewed.serial_number != first[name].serial_number
        expires = f"{renewed.not_valid_after_utc:%Y-%m-%d %H:%M:%S}"
        assert f"renewed {name} (expires {expires} UTC)" in out, out
        assert pebble.certificate_status(renewed.serial_number) == "Valid"
