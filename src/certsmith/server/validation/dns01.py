"""dns-01 validation (RFC 8555 §8.4): a TXT record at _acme-challenge.NAME holding the digest."""

from __future__ import annotations

from typing import Any

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
from dns.rdtypes.ANY.TXT import TXT

from certsmith.acme.challenges import dns01_record_name, dns01_txt_value
from certsmith.acme.problems import AcmeProblem, ProblemType

# A wrong record is shown by its first characters only: enough to recognise a stale value,
# too little to echo whatever else the domain publishes there.
_SHOWN_PREFIX = 8
_SHOWN_RECORDS = 3


def _problem(kind: ProblemType, detail: str, name: str) -> AcmeProblem:
    return AcmeProblem(kind, detail, identifier={"type": "dns", "value": name})


def _server_label(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Dns01Validator:
    """Looks up dns-01 TXT records through one DNS server, or the system's (resolv.conf)."""

    def __init__(self, resolver_server: tuple[str, int] | None, timeout: float) -> None:
        self._timeout = timeout
        self._dns: dns.asyncresolver.Resolver | None = None
        self._unusable: str | None = None
        if resolver_server is not None:
            self._label = _server_label(resolver_server)
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [resolver_server[0]]
            resolver.port = resolver_server[1]
        else:
            self._label = "system"
            try:
                resolver = dns.asyncresolver.Resolver()
            except dns.resolver.NoResolverConfiguration as err:
                # A host without resolv.conf can still validate http-01 (getaddrinfo reads
                # /etc/hosts), so this fails each dns-01 check rather than the CA's start.
                self._unusable = f"no system DNS resolver is configured: {err}"
                return
        resolver.lifetime = timeout
        self._dns = resolver

    async def validate(self, name: str, key_authorization: str) -> dict[str, Any]:
        """The validation record when a TXT record at _acme-challenge.NAME holds the digest.

        `name` is the base name; a wildcard's "*." is dropped as RFC 8555 §8.4 says.
        """
        name = name.removeprefix("*.")
        record_name = dns01_record_name(name)
        record: dict[str, Any] = {
            "hostname": name,
            "txtName": record_name,
            "resolver": self._label,
        }
        answer = await self._lookup(record_name, name)
        if answer.canonical_name != answer.qname:
            record["cname"] = answer.canonical_name.to_text(omit_final_dot=True)
        # A TXT record may be split into several strings of up to 255 bytes; its value is
        # their concatenation (RFC 7208 §3.3 states the same convention for SPF).
        values = [b"".join(rdata.strings) for rdata in answer if isinstance(rdata, TXT)]
        expected = dns01_txt_value(key_authorization).encode()
        if expected in values:
            return record
        shown = ", ".join(
            repr(value[:_SHOWN_PREFIX].decode("utf-8", "replace"))
            + ("…" if len(value) > _SHOWN_PREFIX else "")
            for value in values[:_SHOWN_RECORDS]
        )
        more = f" and {len(values) - _SHOWN_RECORDS} more" if len(values) > _SHOWN_RECORDS else ""
        found = "1 record found, without" if len(values) == 1 else f"{len(values)} found, none with"
        raise _problem(
            ProblemType.UNAUTHORIZED,
            f"Incorrect TXT record at {record_name}: {found} the expected value ({shown}{more})",
            name,
        )

    async def _lookup(self, record_name: str, name: str) -> dns.resolver.Answer:
        if self._dns is None:
            assert self._unusable is not None
            raise _problem(ProblemType.DNS, self._unusable, name)
        try:
            qname = dns.name.from_text(record_name)
        except dns.exception.DNSException as err:
            raise _problem(ProblemType.DNS, f"cannot query {record_name}: {err}", name) from err
        try:
            # dnspython follows a CNAME chain within the answer, as a recursive resolver
            # returns it; the resolver is stub-only, so it does not chase one itself.
            return await self._dns.resolve(qname, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer) as err:
            detail = f"No TXT record found at {record_name}"
            raise _problem(ProblemType.UNAUTHORIZED, detail, name) from err
        except dns.exception.Timeout as err:
            detail = f"DNS query for TXT at {record_name} timed out after {self._timeout:g}s"
            raise _problem(ProblemType.DNS, detail, name) from err
        except dns.resolver.NoNameservers as err:
            # Each entry is (server, tcp, port, error or rcode, response); the rcode or error
            # is what the client can act on, the CA's resolver address is not.
            reasons = sorted({str(entry[3]) for entry in err.kwargs.get("errors", [])})
            detail = f"DNS problem: {', '.join(reasons) or 'no answer'} looking up TXT for "
            raise _problem(ProblemType.DNS, detail + record_name, name) from err
        except dns.exception.DNSException as err:
            detail = f"DNS problem looking up TXT for {record_name}: {err}"
            raise _problem(ProblemType.DNS, detail, name) from err
