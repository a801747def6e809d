"""dns-01 solvers (RFC 8555 §8.4): a hook command, or RFC 2136 updates signed with TSIG.

Both publish `_acme-challenge.NAME.` TXT and return only once a DNS server shows the value,
since the CA asks DNS right after the client answers the challenge.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import shlex
import signal
import socket

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.update
from dns.rdtypes.ANY.TXT import TXT

from certsmith.acme.challenges import dns01_record_name, dns01_txt_value
from certsmith.client.session import AcmeClientError
from certsmith.client.solvers import NoListener

_log = logging.getLogger(__name__)

# Short, so a resolver that cached this value forgets it soon after cleanup, before the
# next order (a renewal, the other half of a wildcard pair) asks for a different one.
_TTL = 60
# A hook may itself wait for a provider's API; one that takes longer is assumed stuck.
_HOOK_TIMEOUT = 120.0
# Once killed, a hook's pipes close at once unless a grandchild left its process group.
_REAP_TIMEOUT = 5.0
_STDERR_TAIL_LINES = 10
_STDERR_TAIL_CHARS = 1000
_FIRST_POLL = 0.25
_MAX_POLL = 5.0
_QUERY_LIFETIME = 5.0
_MIN_QUERY_LIFETIME = 0.5
_UPDATE_TIMEOUT = 10.0

# RFC 8945 §6: HMAC-MD5 "MUST NOT" be used; the SHA-2 family is what servers offer today.
_TSIG_ALGORITHMS = {
    dns.tsig.HMAC_SHA1,
    dns.tsig.HMAC_SHA224,
    dns.tsig.HMAC_SHA256,
    dns.tsig.HMAC_SHA384,
    dns.tsig.HMAC_SHA512,
}
# RFC 8945 §5.2.1-§5.2.4: the TSIG errors a server sends, in a NOTAUTH answer, for a bad key.
_TSIG_ERRORS: dict[type[dns.tsig.PeerError], str] = {
    dns.tsig.PeerBadKey: "BADKEY: the server does not know this key name",
    dns.tsig.PeerBadSignature: "BADSIG: wrong TSIG secret or algorithm",
    dns.tsig.PeerBadTime: "BADTIME: the clocks of client and server differ too much",
    dns.tsig.PeerBadTruncation: "BADTRUNC: the server refuses the truncated MAC",
}


def challenge_record(identifier: dict[str, str]) -> str:
    """The absolute owner name of the TXT record, `_acme-challenge.NAME.` (RFC 8555 §8.4).

    A wildcard is answered at its base name, so `*.x` and `x` share one record.
    """
    if identifier.get("type") != "dns":
        raise AcmeClientError(f"dns-01 cannot answer for a {identifier.get('type')} identifier")
    base = identifier["value"].removeprefix("*.").rstrip(".")
    return dns01_record_name(base) + "."


def _label(server: tuple[str, int]) -> str:
    host, port = server
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _address(host: str) -> str:
    """An IP address for `host`: dnspython sends to addresses only."""
    if dns.inet.is_address(host):
        return host
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as err:
        raise AcmeClientError(f"cannot resolve the DNS server name {host}: {err}") from err
    return str(infos[0][4][0])


async def _stub_resolver(server: tuple[str, int] | None) -> tuple[dns.asyncresolver.Resolver, str]:
    if server is None:
        try:
            return dns.asyncresolver.Resolver(), "the system resolver"
        except dns.resolver.NoResolverConfiguration as err:
            raise AcmeClientError(
                f"no system DNS resolver is configured ({err}); name a resolver to ask"
            ) from err
    stub = dns.asyncresolver.Resolver(configure=False)
    stub.nameservers = [dns.nameserver.Do53Nameserver(await _address(server[0]), server[1])]
    return stub, _label(server)


async def _txt_values(
    stub: dns.asyncresolver.Resolver, record: str, lifetime: float
) -> tuple[set[str], str]:
    """The TXT values at `record`, and how the last answer reads in an error message."""
    try:
        answer = await stub.resolve(record, dns.rdatatype.TXT, lifetime=lifetime, search=False)
    except dns.resolver.NXDOMAIN:
        return set(), "NXDOMAIN"
    except dns.resolver.NoAnswer:
        return set(), "no TXT record there"
    except dns.resolver.LifetimeTimeout:
        return set(), "no answer in time"
    except dns.exception.DNSException as err:
        return set(), str(err)
    # Strings of one TXT record are concatenated, as the CA does when it checks.
    values = {
        b"".join(rdata.strings).decode("ascii", "replace")
        for rdata in answer
        if isinstance(rdata, TXT)
    }
    return values, f"{len(values)} other value(s)"


async def wait_for_txt(
    record: str, value: str, resolver: tuple[str, int] | None, propagation_timeout: float
) -> None:
    """Return once `value` is among the TXT values at `record`, polling with backoff.

    Other values there are fine: a wildcard and its base name share one record
    (RFC 8555 §8.4). `resolver` None means the system resolver.
    """
    stub, where = await _stub_resolver(resolver)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + propagation_timeout
    delay = _FIRST_POLL
    while True:
        lifetime = min(max(deadline - loop.time(), _MIN_QUERY_LIFETIME), _QUERY_LIFETIME)
        values, seen = await _txt_values(stub, record, lifetime)
        if value in values:
            return
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AcmeClientError(
                f"DNS record {record} not visible on {where} after {propagation_timeout:g}s "
                f"(last answer: {seen})"
            )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL)


def _stderr_tail(stderr: bytes) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    tail = "\n".join(lines[-_STDERR_TAIL_LINES:])[-_STDERR_TAIL_CHARS:]
    return tail or "(nothing on stderr)"


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill the hook and everything it started, then read its pipes to their end."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    # Reading to EOF closes the pipe transports; the bound covers a grandchild that left the
    # process group and still holds them.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_REAP_TIMEOUT):
            await process.communicate()


class HookDns01(NoListener):
    """Runs `COMMAND present|cleanup RECORD VALUE` to publish the TXT record.

    RECORD is absolute (`_acme-challenge.example.org.`), VALUE the RFC 8555 §8.4 digest.
    """

    challenge_type = "dns-01"

    def __init__(
        self,
        command: str,
        resolver: tuple[str, int] | None,
        propagation_timeout: float,
        *,
        hook_timeout: float = _HOOK_TIMEOUT,
    ) -> None:
        try:
            self._argv = shlex.split(command)
        except ValueError as err:
            raise AcmeClientError(f"cannot parse the dns hook command {command!r}: {err}") from err
        if not self._argv:
            raise AcmeClientError("the dns hook command is empty")
        self.command = command
        self.resolver = resolver
        self.propagation_timeout = propagation_timeout
        self.hook_timeout = hook_timeout

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        record = challenge_record(identifier)
        value = dns01_txt_value(key_authorization)
        await self._run("present", record, value)
        await wait_for_txt(record, value, self.resolver, self.propagation_timeout)

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        try:
            record = challenge_record(identifier)
            await self._run("cleanup", record, dns01_txt_value(key_authorization))
        except AcmeClientError as err:
            # A leftover TXT value does no harm beyond clutter; the certificate matters more.
            _log.warning("dns-01 cleanup failed: %s", err)

    async def _run(self, action: str, record: str, value: str) -> None:
        shown = f"{shlex.join(self._argv)} {action} {record}"
        try:
            # A session of its own, so a timeout can kill the hook's children too.
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                action,
                record,
                value,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as err:
            raise AcmeClientError(f"cannot run the dns hook `{shown}`: {err}") from err
        try:
            async with asyncio.timeout(self.hook_timeout):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            await _stop(process)
            raise AcmeClientError(
                f"the dns hook `{shown}` did not finish within {self.hook_timeout:g}s"
            ) from None
        except BaseException:
            await _stop(process)
            raise
        if stdout:
            _log.debug("dns hook `%s` said: %s", shown, stdout.decode("utf-8", "replace"))
        code = process.returncode
        if code:
            status = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            raise AcmeClientError(f"the dns hook `{shown}` {status}: {_stderr_tail(stderr)}")


def _tsig_key(name: str | None, secret: str | None, algorithm: str) -> dns.tsig.Key | None:
    if not name and not secret:
        return None
    if not name or not secret:
        raise AcmeClientError("TSIG needs both a key name and a secret")
    try:
        key_name = dns.name.from_text(name)
        algorithm_name = dns.name.from_text(algorithm.lower())
    except dns.exception.DNSException as err:
        raise AcmeClientError(f"bad TSIG key name or algorithm: {err}") from err
    if algorithm_name not in _TSIG_ALGORITHMS:
        offered = ", ".join(sorted(a.to_text(omit_final_dot=True) for a in _TSIG_ALGORITHMS))
        raise AcmeClientError(f"unsupported TSIG algorithm {algorithm!r}; use one of {offered}")
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as err:
        raise AcmeClientError(f"the TSIG secret of key {name} is not base64: {err}") from err
    if not raw:
        raise AcmeClientError(f"the TSIG secret of key {name} is empty")
    return dns.tsig.Key(key_name, raw, algorithm_name)


def _rcode_hint(rcode: dns.rcode.Rcode) -> str:
    # RFC 2136 §2.2 rcodes, with what usually causes them.
    hints = {
        dns.rcode.REFUSED: " (the server lets no update through without the right key)",
        dns.rcode.NOTAUTH: " (the server is not authoritative for the zone, or refused the key)",
        dns.rcode.NOTZONE: " (the record is outside the zone)",
    }
    return hints.get(rcode, "")


class Rfc2136Dns01(NoListener):
    """Adds and deletes the TXT record with RFC 2136 UPDATEs, signed by TSIG (RFC 8945).

    Without a `zone`, the zone is the nearest name above the record for which `server`
    answers an SOA. Visibility is checked on `resolver`, or on `server` when None.
    """

    challenge_type = "dns-01"

    def __init__(
        self,
        server: tuple[str, int],
        tsig_name: str | None,
        tsig_secret: str | None,
        tsig_algorithm: str = "hmac-sha256",
        zone: str | None = None,
        resolver: tuple[str, int] | None = None,
        propagation_timeout: float = 120.0,
    ) -> None:
        self.server = server
        self.resolver = resolver
        self.propagation_timeout = propagation_timeout
        self._key = _tsig_key(tsig_name, tsig_secret, tsig_algorithm)
        try:
            self.zone = dns.name.from_text(zone) if zone else None
        except dns.exception.DNSException as err:
            raise AcmeClientError(f"bad zone name {zone!r}: {err}") from err
        self._zones: dict[dns.name.Name, dns.name.Name] = {}

    async def present(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        record = challenge_record(identifier)
        value = dns01_txt_value(key_authorization)
        name = dns.name.from_text(record)
        update = await self._update(name)
        update.add(name, _TTL, TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value]))
        await self._send(update, f"adding TXT at {record}")
        await wait_for_txt(record, value, self.resolver or self.server, self.propagation_timeout)

    async def cleanup(self, identifier: dict[str, str], token: str, key_authorization: str) -> None:
        try:
            record = challenge_record(identifier)
            value = dns01_txt_value(key_authorization)
            name = dns.name.from_text(record)
            update = await self._update(name)
            # Only this value goes: the other half of a wildcard pair may still need its own.
            update.delete(name, TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value]))
            await self._send(update, f"deleting TXT at {record}")
        except AcmeClientError as err:
            _log.warning("dns-01 cleanup failed: %s", err)

    async def _update(self, name: dns.name.Name) -> dns.update.UpdateMessage:
        update = dns.update.UpdateMessage(await self._zone_of(name))
        if self._key is not None:
            update.use_tsig(self._key)
        return update

    async def _send(self, update: dns.update.UpdateMessage, what: str) -> None:
        where = _label(self.server)
        address = await _address(self.server[0])
        try:
            # TCP: an update must not be lost or cut short, and a retried UDP one could be
            # applied twice.
            response = await dns.asyncquery.tcp(
                update, address, timeout=_UPDATE_TIMEOUT, port=self.server[1]
            )
        except dns.tsig.PeerError as err:
            detail = _TSIG_ERRORS.get(type(err), str(err))
            raise AcmeClientError(f"RFC 2136 {what} on {where} failed: NOTAUTH/{detail}") from err
        except (OSError, EOFError, dns.exception.DNSException) as err:
            reason = str(err) or type(err).__name__
            raise AcmeClientError(f"RFC 2136 {what} on {where} failed: {reason}") from err
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise AcmeClientError(
                f"RFC 2136 {what} on {where} failed: {dns.rcode.to_text(rcode)}"
                + _rcode_hint(rcode)
            )

    async def _zone_of(self, name: dns.name.Name) -> dns.name.Name:
        """The zone to update: given, or the nearest apex above `name` on the server."""
        if self.zone is not None:
            if not name.is_subdomain(self.zone):
                raise AcmeClientError(f"{name} is not in the zone {self.zone}")
            return self.zone
        if name in self._zones:
            return self._zones[name]
        where = _label(self.server)
        address = await _address(self.server[0])
        candidate = name
        while candidate != dns.name.root:
            query = dns.message.make_query(candidate, dns.rdatatype.SOA)
            try:
                response, _ = await dns.asyncquery.udp_with_fallback(
                    query, address, timeout=_QUERY_LIFETIME, port=self.server[1]
                )
            except (OSError, EOFError, dns.exception.DNSException) as err:
                reason = str(err) or type(err).__name__
                raise AcmeClientError(
                    f"cannot ask {where} for the SOA of {candidate}: {reason}"
                ) from err
            # Only an SOA owned by the name itself marks an apex; one in the authority
            # section of a negative answer belongs to some zone above.
            soa = response.get_rrset(
                response.answer, candidate, dns.rdataclass.IN, dns.rdatatype.SOA
            )
            if response.rcode() == dns.rcode.NOERROR and soa is not None:
                self._zones[name] = candidate
                return candidate
            candidate = candidate.parent()
        raise AcmeClientError(
            f"{where} serves no zone above {name}; name the zone to update explicitly"
        )
