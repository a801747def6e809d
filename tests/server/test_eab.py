"""External Account Binding (RFC 8555 §7.3.4) against a CA started with --eab-required."""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import OctKey
from joserfc.jws import JWSRegistry

from certsmith.acme.jose import b64url_decode
from tests.acmetest import Acme, new_key
from tests.server.dbsnapshot import snapshot
from tests.server.test_bad_input import assert_problem
from tests.support import CERTSMITH, CaServer, ChallTestSrv


@pytest.fixture(scope="module")
def eab_ca(
    tmp_path_factory: pytest.TempPathFactory, challtestsrv: ChallTestSrv
) -> Iterator[CaServer]:
    server = CaServer(
        tmp_path_factory.mktemp("eab") / "data",
        challtestsrv.dns_server,
        extra_args=["--eab-required"],
    )
    server.start()
    yield server
    server.stop()


def eab_add(ca: CaServer) -> tuple[str, str]:
    result = subprocess.run(
        [*CERTSMITH, "eab", "add", "--data-dir", str(ca.data_dir), "--comment", "test"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ},
    )
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    return fields["key id"].strip(), fields["mac key"].strip()


def binding(
    acme: Acme,
    key_id: str,
    mac: str,
    *,
    url: str | None = None,
    payload_key: Any = None,
    alg: str = "HS256",
) -> dict[str, str]:
    payload = json.dumps((payload_key or acme.key).as_dict(private=False)).encode()
    header = {"alg": alg, "kid": key_id, "url": url or acme.directory["newAccount"]}
    registry = JWSRegistry(algorithms=[alg], strict_check_header=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signed = jws.serialize_json(
            {"protected": header},
            payload,
            OctKey.import_key(b64url_decode(mac)),
            registry=registry,
        )
    return dict(signed)


def register(acme: Acme, eab: dict[str, str] | None) -> Any:
    payload: dict[str, Any] = {"termsOfServiceAgreed": True}
    if eab is not None:
        payload["externalAccountBinding"] = eab
    return acme.post(acme.directory["newAccount"], payload, use_jwk=True)


def test_directory_says_eab_required(eab_ca: CaServer) -> None:
    acme = Acme(eab_ca.directory, eab_ca.root)
    assert acme.directory["meta"]["externalAccountRequired"] is True
    acme.close()


def test_binding_required_and_single_use(eab_ca: CaServer) -> None:
    key_id, mac = eab_add(eab_ca)
    acme = Acme(eab_ca.directory, eab_ca.root)
    assert_problem(register(acme, None), "externalAccountRequired", 400)
    created = register(acme, binding(acme, key_id, mac))
    assert created.status_code == 201, created.text
    second = Acme(eab_ca.directory, eab_ca.root)
    before = snapshot(eab_ca.data_dir)
    assert_problem(register(second, binding(second, key_id, mac)), "unauthorized", 403)
    assert snapshot(eab_ca.data_dir) == before
    acme.close()
    second.close()


@pytest.mark.parametrize(
    ("variant", "code", "status"),
    [
        pytest.param("wrong-mac", "unauthorized", 403, id="wrong-mac"),
        pytest.param("unknown-kid", "unauthorized", 403, id="unknown-kid"),
        pytest.param("wrong-url", "malformed", 400, id="wrong-url"),
        pytest.param("other-key", "malformed", 400, id="payload-is-another-key"),
        pytest.param("not-object", "malformed", 400, id="not-an-object"),
    ],
)
def test_bad_bindings_change_nothing(
    eab_ca: CaServer, variant: str, code: str, status: int
) -> None:
    key_id, mac = eab_add(eab_ca)
    acme = Acme(eab_ca.directory, eab_ca.root)
    eab: Any
    if variant == "wrong-mac":
        eab = binding(acme, key_id, "A" * 43)
    elif variant == "unknown-kid":
        eab = binding(acme, "kid-nope", mac)
    elif variant == "wrong-url":
        eab = binding(acme, key_id, mac, url=acme.directory["newOrder"])
    elif variant == "other-key":
        eab = binding(acme, key_id, mac, payload_key=new_key())
    else:
        eab = "not a jws"
    before = snapshot(eab_ca.data_dir)
    assert_problem(register(acme, eab), code, status)
    assert snapshot(eab_ca.data_dir) == before
    acme.close()


def test_revoked_key_is_refused(eab_ca: CaServer) -> None:
    key_id, mac = eab_add(eab_ca)
    subprocess.run(
        [*CERTSMITH, "eab", "revoke", "--data-dir", str(eab_ca.data_dir), key_id],
        check=True,
        capture_output=True,
    )
    acme = Acme(eab_ca.directory, eab_ca.root)
    assert_problem(register(acme, binding(acme, key_id, mac)), "unauthorized", 403)
    listing = subprocess.run(
        [*CERTSMITH, "eab", "list", "--data-dir", str(eab_ca.data_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"{key_id}\trevoked" in listing
    acme.close()


def test_certbot_registers_with_eab(eab_ca: CaServer, tmp_path: Path) -> None:
    from tests.interop.test_certbot import certbot

    key_id, mac = eab_add(eab_ca)
    workdir = tmp_path / "certbot"
    certbot(
        eab_ca,
        workdir,
        "register",
        "--agree-tos",
        "-m",
        "eab@example.org",
        "--no-eff-email",
        # "=": a base64url key may start with "-", which argparse would take for an option.
        f"--eab-kid={key_id}",
        f"--eab-hmac-key={mac}",
    )
    listing = subprocess.run(
        [*CERTSMITH, "eab", "list", "--data-dir", str(eab_ca.data_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"{key_id}\tbound" in listing
