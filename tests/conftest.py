"""Shared fixtures: real servers on loopback, started per test session or per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CaServer, ChallTestSrv, free_port


@pytest.fixture(scope="session")
def challtestsrv() -> Iterator[ChallTestSrv]:
    server = ChallTestSrv(dns_port=free_port(), management_port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ca_server(
    tmp_path_factory: pytest.TempPathFactory, challtestsrv: ChallTestSrv
) -> Iterator[CaServer]:
    """One CA for the whole session, for tests that only add their own accounts."""
    server = CaServer(tmp_path_factory.mktemp("ca") / "data", challtestsrv.dns_server)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_ca(tmp_path: Path, challtestsrv: ChallTestSrv) -> Iterator[CaServer]:
    """A CA of its own, for tests that restart it or inspect its database."""
    server = CaServer(tmp_path / "data", challtestsrv.dns_server)
    server.start()
    yield server
    server.stop()
