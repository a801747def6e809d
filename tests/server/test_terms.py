"""Changed terms of service (RFC 8555 §7.3.3): userActionRequired until agreed again."""

from __future__ import annotations

from pathlib import Path

from tests.acmetest import Acme
from tests.server.test_bad_input import assert_problem
from tests.support import CaServer, ChallTestSrv


def test_changed_terms_require_agreement(tmp_path: Path, challtestsrv: ChallTestSrv) -> None:
    ca = CaServer(
        tmp_path / "data",
        challtestsrv.dns_server,
        extra_args=["--tos-url", "https://ca.example/terms/v1"],
    )
    ca.start()
    try:
        acme = Acme(ca.directory, ca.root)
        assert acme.register().status_code == 201
        assert acme.new_order("terms-v1.test").status_code == 201
        acme.close()

        ca.extra_args = ["--tos-url", "https://ca.example/terms/v2"]
        ca.restart()
        acme = Acme(ca.directory, ca.root, key=acme.key, kid=acme.kid)
        assert acme.directory["meta"]["termsOfService"] == "https://ca.example/terms/v2"
        refused = acme.new_order("terms-v2.test")
        body = assert_problem(refused, "userActionRequired", 403)
        assert body["instance"] == "https://ca.example/terms/v2"
        assert '<https://ca.example/terms/v2>;rel="terms-of-service"' in refused.headers["Link"]
        # Reading the account is still allowed; agreeing lets the account work again.
        assert acme.get(acme.kid or "").status_code == 200
        agreed = acme.post(acme.kid or "", {"termsOfServiceAgreed": True})
        assert agreed.status_code == 200
        assert acme.new_order("terms-v2.test").status_code == 201
        acme.close()
    finally:
        ca.stop()
