"""Apache httpd with mod_md (Debian packages, nobody here wrote them) gets a certificate."""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from tests.interop.peers import PeerProcess, serving, validated_challenges, wait_or_fail
from tests.interop.verify import verify_chain
from tests.support import CaServer, require_tool

pytestmark = pytest.mark.interop

NAME = "apache.interop.test"
MODULES = Path("/usr/lib/apache2/modules")
# mod_watchdog, which drives mod_md's renewals, is compiled into Debian's apache2.
LOAD = ("mpm_event", "authz_core", "socache_shmcb", "ssl", "md")


def httpd_conf(ca: CaServer, root: Path, store: Path, ca_root: Path, challenge: str | None) -> str:
    modules = "\n".join(f"LoadModule {m}_module {MODULES / f'mod_{m}.so'}" for m in LOAD)
    # Without MDCAChallenges mod_md picks among the challenges it can answer on its ports.
    only = f"MDCAChallenges {challenge}" if challenge else ""
    # Started as root, httpd's children run as User: they answer challenges from the store
    # and mod_md's ACME client among them reads the CA's root. Not started as root, there
    # is no switch and User/Group are ignored.
    return f"""ServerRoot "{root}"
PidFile "{root}/httpd.pid"
ErrorLog "{root}/error.log"
DefaultRuntimeDir "{root}/run"
LogLevel warn md:info
User www-data
Group www-data
ServerName localhost
ServerAdmin interop@example.org
{modules}

StartServers 1
ServerLimit 2
ThreadsPerChild 4
MinSpareThreads 1
MaxSpareThreads 8
MaxRequestWorkers 8

Listen 127.0.0.1:{ca.http01_port} http
Listen 127.0.0.1:{ca.tlsalpn01_port} https

# The CA connects to its own http-01 and tls-alpn-01 ports, not to 80 and 443: tell mod_md
# that "port 80" reaches this server on the first and "port 443" on the second.
MDPortMap http:{ca.http01_port} https:{ca.tlsalpn01_port}
MDCertificateAuthority {ca.directory}
MDCACertificateFile {ca_root}
MDCertificateAgreement accepted
MDContactEmail interop@example.org
MDStoreDir "{store}"
{only}
MDomain {NAME}

<VirtualHost 127.0.0.1:{ca.http01_port}>
    ServerName {NAME}
</VirtualHost>

<VirtualHost 127.0.0.1:{ca.tlsalpn01_port}>
    ServerName {NAME}
    SSLEngine on
    Protocols http/1.1 acme-tls/1
</VirtualHost>
"""


@dataclass
class Apache:
    peer: PeerProcess
    store: Path


@pytest.fixture(
    params=[None, "http-01", "tls-alpn-01"], ids=["md-chooses", "http-01", "tls-alpn-01"]
)
def challenge(request: pytest.FixtureRequest) -> str | None:
    """The only challenge mod_md may use (MDCAChallenges), or None for its own choice."""
    param: str | None = request.param
    return param


@pytest.fixture
def apache(fresh_ca: CaServer, tmp_path: Path, challenge: str | None) -> Iterator[Apache]:
    root = tmp_path / "httpd"
    (root / "run").mkdir(parents=True)
    # The children (User) reach the store and the CA's root, and pytest's base directory
    # is 0700 for its owner; so both live in a directory of their own, open for reading.
    shared = Path(tempfile.mkdtemp(prefix="certsmith-md-"))
    shared.chmod(0o755)
    store = shared / "md"
    ca_root = shared / "ca-root.pem"
    shutil.copyfile(fresh_ca.root, ca_root)
    ca_root.chmod(0o644)
    conf = root / "httpd.conf"
    conf.write_text(httpd_conf(fresh_ca, root, store, ca_root, challenge))
    env = {key: value for key, value in os.environ.items() if not key.startswith("APACHE_")}
    peer = PeerProcess(
        [require_tool("apache2"), "-d", str(root), "-f", str(conf), "-DFOREGROUND"],
        output=tmp_path / "httpd.out",
        env=env,
        extra_logs=[root / "error.log"],
    )
    try:
        peer.start()
        yield Apache(peer, store)
    finally:
        peer.stop()
        shutil.rmtree(shared, ignore_errors=True)


def test_apache_md_obtains_and_serves_certificate(
    fresh_ca: CaServer, apache: Apache, challenge: str | None
) -> None:
    def logs() -> str:
        return f"{apache.peer.log()}\n--- CA ---\n{fresh_ca.log()[-4000:]}"

    staging = apache.store / "staging" / NAME

    def staged() -> bool:
        # mod_md's job file says when the renewal is complete and the set may be activated.
        assert apache.peer.running(), f"apache2 exited early\n{logs()}"
        try:
            job = json.loads((staging / "job.json").read_text())
        except ValueError:  # caught mid-write
            return False
        return job.get("finished") is True and (staging / "pubcert.pem").exists()

    wait_or_fail(staged, 30, "mod_md's staged certificate", logs)
    pubcert = staging / "pubcert.pem"
    leaf = verify_chain(pubcert.read_bytes(), fresh_ca.root, NAME)

    # A graceful restart activates the staged certificate; then httpd serves it.
    apache.peer.send_signal(signal.SIGUSR1)
    # Until the new generation of children runs, handshakes show mod_md's untrusted
    # fallback certificate and fail; `serving` retries them.
    response, der = serving(fresh_ca.tlsalpn01_port, NAME, fresh_ca.root, 15, logs)
    assert response.startswith("HTTP/1.1 "), f"{response}\n{logs()}"
    assert x509.load_der_x509_certificate(der) == leaf, logs()
    active = apache.store / "domains" / NAME / "pubcert.pem"
    assert verify_chain(active.read_bytes(), fresh_ca.root, NAME) == leaf, logs()

    challenges = validated_challenges(fresh_ca, NAME)
    print(f"apache mod_md: the CA validated {NAME} with {', '.join(challenges) or 'nothing'}")
    assert challenges, f"no challenge.valid line for {NAME}\n{logs()}"
    assert set(challenges) <= {"http-01", "tls-alpn-01"}, logs()
    if challenge is not None:
        assert challenges == [challenge], logs()
