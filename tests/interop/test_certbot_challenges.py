"""certbot against `certsmith serve` with webroot http-01, and dns-01 through manual hooks."""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.interop.test_certbot import certbot
from tests.interop.verify import verify_chain
from tests.support import CaServer, ChallTestSrv

pytestmark = pytest.mark.interop

# certbot runs a manual hook with CERTBOT_DOMAIN (the name without "*.") and
# CERTBOT_VALIDATION in its environment; the hook sets or clears the TXT record through
# pebble-challtestsrv's management API.
HOOK_SCRIPT = """\
#!{python}
import json
import os
import urllib.request

host = "_acme-challenge." + os.environ["CERTBOT_DOMAIN"] + "."
if "{action}" == "set-txt":
    body = {{"host": host, "value": os.environ["CERTBOT_VALIDATION"]}}
else:
    body = {{"host": host}}
request = urllib.request.Request(
    "http://127.0.0.1:{port}/{action}",
    data=json.dumps(body).encode(),
    headers={{"Content-Type": "application/json"}},
    method="POST",
)
with urllib.request.urlopen(request, timeout=5) as response:
    response.read()
"""

REGISTER = ["--agree-tos", "-m", "interop@example.org", "--no-eff-email"]


class RecordingHandler(SimpleHTTPRequestHandler):
    """Serves files quietly and notes each request's Host header and path."""

    def __init__(self, *args: Any, seen: list[tuple[str, str]], **kwargs: Any) -> None:
        self.seen = seen
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.seen.append((self.headers.get("Host", ""), self.path))
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_directory(root: Path, port: int) -> Iterator[list[tuple[str, str]]]:
    """A plain HTTP server for `root` on 127.0.0.1:`port`; yields the (Host, path) it saw."""
    seen: list[tuple[str, str]] = []
    handler = partial(RecordingHandler, directory=str(root), seen=seen)
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def dns_hooks(tmp_path: Path, challtestsrv: ChallTestSrv) -> list[str]:
    """certbot flags for dns-01 with auth and cleanup hooks that talk to challtestsrv."""
    hooks = []
    for action in ("set-txt", "clear-txt"):
        script = tmp_path / f"certbot-{action}"
        script.write_text(
            HOOK_SCRIPT.format(
                python=sys.executable, action=action, port=challtestsrv.management_port
            )
        )
        script.chmod(0o755)
        # certbot runs a hook through the shell.
        hooks.append(shlex.quote(str(script)))
    return [
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        hooks[0],
        "--manual-cleanup-hook",
        hooks[1],
    ]


def dns_names(leaf: x509.Certificate) -> list[str]:
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(san.get_values_for_type(x509.DNSName))


def challenges_performed(workdir: Path) -> list[str]:
    """The "dns-01 challenge for ..." lines certbot logged, one per authorization."""
    log = (workdir / "letsencrypt.log").read_text()
    return [line for line in log.splitlines() if "challenge for Identifier" in line]


def fullchain(workdir: Path, lineage: str) -> bytes:
    return (workdir / "live" / lineage / "fullchain.pem").read_bytes()


def test_certbot_webroot(ca_server: CaServer, tmp_path: Path) -> None:
    workdir, webroot = tmp_path / "certbot", tmp_path / "www"
    webroot.mkdir()
    names = ["webroot.certbot.test", "www.webroot.certbot.test"]
    domains = [arg for name in names for arg in ("-d", name)]
    plugin = ["--webroot", "-w", str(webroot)]
    with serve_directory(webroot, ca_server.http01_port) as seen:
        certbot(ca_server, workdir, "certonly", *plugin, *REGISTER, *domains)
    chain = fullchain(workdir, names[0])
    leaf = verify_chain(chain, ca_server.root, names[0])
    verify_chain(chain, ca_server.root, names[1])
    assert dns_names(leaf) == sorted(names)
    # The CA fetched one token per name from this server, naming the host and port it dialled.
    assert {host for host, _ in seen} == {f"{name}:{ca_server.http01_port}" for name in names}
    paths = {path for _, path in seen}
    assert len(paths) == 2, seen
    assert all(path.startswith("/.well-known/acme-challenge/") for path in paths), seen


def test_certbot_dns01_manual_hooks(
    ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path
) -> None:
    workdir = tmp_path / "certbot"
    hooks = dns_hooks(tmp_path, challtestsrv)
    certbot(ca_server, workdir, "certonly", *hooks, *REGISTER, "-d", "dns.certbot.test")
    performed = challenges_performed(workdir)
    assert len(performed) == 1 and "dns-01" in performed[0], performed
    leaf = verify_chain(fullchain(workdir, "dns.certbot.test"), ca_server.root, "dns.certbot.test")
    assert dns_names(leaf) == ["dns.certbot.test"]


def test_certbot_wildcard_dns01(
    ca_server: CaServer, challtestsrv: ChallTestSrv, tmp_path: Path
) -> None:
    workdir = tmp_path / "certbot"
    hooks = dns_hooks(tmp_path, challtestsrv)
    domains = ["-d", "*.wild.certbot.test", "-d", "wild.certbot.test"]
    # Both authorizations want a TXT record at _acme-challenge.wild.certbot.test; certbot
    # runs both auth hooks before answering either challenge, so the record holds two values.
    certbot(ca_server, workdir, "certonly", *hooks, *REGISTER, *domains)
    performed = challenges_performed(workdir)
    assert len(performed) == 2 and all("dns-01" in line for line in performed), performed
    # certbot names the lineage after the first name without its "*.".
    chain = fullchain(workdir, "wild.certbot.test")
    leaf = verify_chain(chain, ca_server.root, "wild.certbot.test")
    verify_chain(chain, ca_server.root, "any.wild.certbot.test")
    assert dns_names(leaf) == ["*.wild.certbot.test", "wild.certbot.test"]
