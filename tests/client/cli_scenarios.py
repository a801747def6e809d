"""What the client's CLI must do against any ACME CA; a test module per CA inherits these.

A subclass named Test... provides the `client` fixture (a fresh config directory pointed
at its CA) and sets `suffix`, under which every name it asks for lies, and `ip_address`,
an IP identifier the CA reaches the test's solvers at.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tests.client.cli_support import (
    Client,
    check_stored,
    dns_hook,
    domains,
    standalone,
    tls_alpn,
    verify,
    write_dns_hook,
)
from tests.interop.helpers import serve_challenges


class CliScenarios:
    suffix: ClassVar[str]
    ip_address: ClassVar[str]

    def name(self, label: str) -> str:
        return f"{label}.{self.suffix}"

    def test_standalone_http01(self, client: Client) -> None:
        main, www = self.name("standalone"), self.name("www.standalone")
        out = client.issue(
            *standalone(client.ca),
            "--agree-tos",
            "--email",
            "cli@example.org",
            *domains(main, www),
        )
        live = client.config_dir / "live" / main
        assert out.strip() == f"certificate for {main}, {www} in {live}"
        fullchain = check_stored(client.config_dir, main)
        leaf = verify(fullchain, client.ca.root, main)
        verify(fullchain, client.ca.root, www)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(names.get_values_for_type(x509.DNSName)) == sorted([main, www])
        # The default key type is ECDSA P-256.
        public = leaf.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == "secp256r1"

    def test_webroot_http01(self, client: Client, tmp_path: Path) -> None:
        name = self.name("webroot")
        with serve_challenges(tmp_path / "www", client.ca.http01_port) as served:
            client.issue("--webroot", str(served.webroot), "--agree-tos", *domains(name))
        assert len(served.fetched_tokens()) >= 1, served.requests
        # Every challenge file is removed once the order is done.
        assert list(served.challenge_dir.iterdir()) == []
        verify(check_stored(client.config_dir, name), client.ca.root, name)

    def test_dns_hook_wildcard(self, client: Client, tmp_path: Path) -> None:
        base = self.name("w")
        hook = write_dns_hook(tmp_path / "hook", client.ca.challtestsrv_port)
        client.issue(*dns_hook(client.ca, hook), "--agree-tos", *domains(f"*.{base}", base))
        # The certificate is stored under the first name without its "*.".
        fullchain = check_stored(client.config_dir, base)
        verify(fullchain, client.ca.root, base)
        verify(fullchain, client.ca.root, f"anything.{base}")
        calls = hook.calls()
        record = f"_acme-challenge.{base}."
        presented = [value for action, where, value in calls if action == "present"]
        assert {where for _, where, _ in calls} == {record}, calls
        assert len(set(presented)) == 2, calls  # one value for *.w, another for w
        cleaned = {value for action, _, value in calls if action == "cleanup"}
        assert cleaned == set(presented), calls

    def test_tls_alpn01(self, client: Client) -> None:
        name = self.name("alpn")
        client.issue(*tls_alpn(client.ca), "--agree-tos", *domains(name))
        verify(check_stored(client.config_dir, name), client.ca.root, name)

    def test_ip_identifier(self, client: Client) -> None:
        address = self.ip_address
        client.issue(*standalone(client.ca, address), "--agree-tos", *domains(address))
        leaf = verify(check_stored(client.config_dir, address), client.ca.root, address)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [address]
        assert names.get_values_for_type(x509.DNSName) == []

    @pytest.mark.parametrize(
        ("key_type", "expected"), [("rsa2048", ("rsa", 2048)), ("ec384", ("ec", 384))]
    )
    def test_key_types(self, client: Client, key_type: str, expected: tuple[str, int]) -> None:
        name = self.name(f"key-{key_type}")
        client.issue(*standalone(client.ca), "--agree-tos", "--key-type", key_type, "-d", name)
        leaf = verify(check_stored(client.config_dir, name), client.ca.root, name)
        key = load_pem_private_key(
            (client.config_dir / "live" / name / "privkey.pem").read_bytes(), None
        )
        kind = "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        assert (kind, key.key_size) == expected
        assert leaf.public_key() == key.public_key()

    def test_revoke_by_cert_name(self, client: Client) -> None:
        name = self.name("revoke")
        client.issue(*standalone(client.ca), "--agree-tos", *domains(name))
        serial = x509.load_pem_x509_certificates(check_stored(client.config_dir, name))[0]
        out = client.ok("revoke", *client.connection, "--cert-name", name)
        assert out.strip() == f"revoked certificate {serial.serial_number:x}"
        if client.ca.revocation_status is not None:
            assert client.ca.revocation_status(serial.serial_number) == "Revoked"
        again = client.fails("revoke", *client.connection, "--cert-name", name)
        assert "alreadyRevoked" in again, again

    def test_account_rollover_then_issue(self, client: Client, tmp_path: Path) -> None:
        client.issue(*standalone(client.ca), "--agree-tos", *domains(self.name("before-roll")))
        kid = client.account_kid()
        old_key = (client.account_dir() / "account.key").read_bytes()
        stale = tmp_path / "stale-copy"
        shutil.copytree(client.config_dir, stale)

        assert client.account("rollover").strip() == "account key replaced"
        assert (client.account_dir() / "account.key").read_bytes() != old_key
        assert client.account_kid() == kid
        shown = client.account("show")
        assert f"url: {kid}" in shown.splitlines(), shown
        assert "status: valid" in shown.splitlines(), shown

        name = self.name("after-roll")
        client.issue(*standalone(client.ca), *domains(name))
        assert client.account_kid() == kid
        verify(check_stored(client.config_dir, name), client.ca.root, name)

        # The old key no longer speaks for the account.
        stale_client = Client(client.ca, stale)
        stale_client.issue_fails(*standalone(client.ca), *domains(self.name("stale-key")))

    def test_account_deactivate(self, client: Client, tmp_path: Path) -> None:
        registered = client.account("register", "--agree-tos", "--email", "gone@example.org")
        kid = client.account_kid()
        assert registered.strip() == f"account {kid}"
        # A second copy of the account (a backup, another machine) keeps the key.
        copy = Client(client.ca, tmp_path / "copy")
        shutil.copytree(client.config_dir, copy.config_dir)

        assert client.account("deactivate", "--yes").strip() == "account deactivated"
        # The deactivated account is forgotten locally ...
        error = client.fails("account", "show", *client.connection)
        assert "no account" in error, error
        # ... and the CA refuses the key wherever it is still kept.
        error = copy.issue_fails(*standalone(client.ca), *domains(self.name("deactivated")))
        assert "unauthorized" in error, error
        assert "deactivated" in error, error

    def test_certificates_listing(self, client: Client) -> None:
        first, second = self.name("list-one"), self.name("list-two")
        client.issue(*standalone(client.ca), "--agree-tos", *domains(first))
        client.issue(*standalone(client.ca), "--cert-name", "custom", *domains(second, first))
        listing = client.certificates()
        blocks = dict(re.findall(r"^(\S+)\n((?:  .*\n?)+)", listing, flags=re.MULTILINE))
        assert sorted(blocks) == sorted([first, "custom"]), listing
        assert f"  domains: {first}\n" in blocks[first], listing
        assert f"  domains: {second} {first}\n" in blocks["custom"], listing
        fullchain = client.config_dir / "live" / "custom" / "fullchain.pem"
        assert f"  path: {fullchain}" in blocks["custom"], listing
        renewal = json.loads((client.config_dir / "renewal" / "custom.json").read_text())
        assert renewal["domains"] == [second, first]

    def test_failed_validation_is_one_line(self, client: Client, tmp_path: Path) -> None:
        # Nothing serves the webroot: the CA's http-01 fetch finds no server.
        name = self.name("nobody-home")
        error = client.issue_fails("--webroot", str(tmp_path / "www"), "--agree-tos", "-d", name)
        assert name in error, error
        assert not (client.config_dir / "live" / name).exists()

    def test_usage_errors_are_one_line(self, client: Client) -> None:
        error = client.issue_fails("--agree-tos", "-d", self.name("no-solver"))
        assert "--standalone" in error, error
        error = client.issue_fails(*standalone(client.ca), "-d", self.name("no-terms"))
        assert "--agree-tos" in error, error

    def test_busy_port_is_one_line(self, client: Client) -> None:
        with socket.socket() as busy:
            # SO_REUSEADDR only so that connections of earlier tests in TIME_WAIT don't matter.
            busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            busy.bind(("127.0.0.1", client.ca.http01_port))
            busy.listen()
            error = client.issue_fails(
                *standalone(client.ca), "--agree-tos", "-d", self.name("busy-port")
            )
        assert f"port {client.ca.http01_port} is in use" in error, error
