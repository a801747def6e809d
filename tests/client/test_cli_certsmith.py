"""The certsmith client's CLI against `certsmith serve`."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.x509.verification import VerificationError

from tests.client.cli_scenarios import CliScenarios
from tests.client.cli_support import (
    Client,
    certsmith_ca,
    check_stored,
    common_name,
    domains,
    standalone,
    verify,
)
from tests.support import CaServer, ChallTestSrv


class TestCliCertsmith(CliScenarios):
    suffix = "cli.certsmith.test"
    # Not 127.0.0.1: the CA must connect to the address the identifier names.
    ip_address = "127.0.0.2"

    @pytest.fixture
    def client(self, ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path) -> Client:
        ca = certsmith_ca(ca_server, challtestsrv)
        return Client(ca, tmp_path / "config")

    def test_preferred_chain(self, client: Client, ca_server: CaServer) -> None:
        alternate_root = ca_server.data_dir / "alternate-root.pem"
        name = self.name("preferred")
        client.issue(
            *standalone(client.ca),
            "--agree-tos",
            "--preferred-chain",
            common_name(alternate_root),
            *domains(name),
        )
        fullchain = check_stored(client.config_dir, name)
        verify(fullchain, alternate_root, name)
        with pytest.raises(VerificationError):
            verify(fullchain, ca_server.root, name)

    def test_default_chain_without_preference(self, client: Client, ca_server: CaServer) -> None:
        name = self.name("default-chain")
        client.issue(
            *standalone(client.ca), "--agree-tos", "--preferred-chain", "No Such CA", "-d", name
        )
        verify(check_stored(client.config_dir, name), ca_server.root, name)
