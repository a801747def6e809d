"""The certsmith client's CLI against Pebble, the ACME test CA nobody here wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.client.cli_scenarios import CliScenarios
from tests.client.cli_support import Ca, Client, check_stored, domains, standalone, verify
from tests.client.pebble import Pebble

pytestmark = pytest.mark.interop


def pebble_ca(pebble: Pebble) -> Ca:
    return Ca(
        directory=pebble.directory,
        ca_bundle=pebble.ca_bundle,
        root=pebble.root,
        http01_port=pebble.http01_port,
        tlsalpn01_port=pebble.tlsalpn01_port,
        dns_server=pebble.dns_server,
        challtestsrv_port=pebble.challtestsrv_management_port,
        revocation_status=pebble.certificate_status,
    )


class TestCliPebble(CliScenarios):
    suffix = "pebble.test"
    ip_address = "127.0.0.1"

    @pytest.fixture
    def client(self, pebble: Pebble, tmp_path: Path) -> Client:
        return Client(pebble_ca(pebble), tmp_path / "config")


# Pebble rejects half of all nonces here; the client retries each request up to 15 times,
# so an issuance of ~12 signed requests fails with odds of about 12 in 65,000.
def test_issue_while_pebble_rejects_half_the_nonces(
    pebble_nonce_reject: Pebble, tmp_path: Path
) -> None:
    client = Client(pebble_ca(pebble_nonce_reject), tmp_path / "config")
    name = "badnonce.pebble.test"
    client.issue(*standalone(client.ca), "--agree-tos", *domains(name, f"www.{name}"))
    fullchain = check_stored(client.config_dir, name)
    verify(fullchain, pebble_nonce_reject.root, name)
    verify(fullchain, pebble_nonce_reject.root, f"www.{name}")
