"""Outbound SMTP: deliver one message to the recipients of one domain, enforcing TLS policy.

``OutboundTransport.deliver`` returns one :class:`Attempt` per recipient and raises
only when the caller is wrong; every expected trouble (DNS, refused connections,
TLS policy unmet, 4xx/5xx replies) is a value.  Reply classification here is coarse
(2xx delivered, 4xx deferred, 5xx failed); ``domain/retry.py`` refines the reasons.

Transport notes:

* TLS follows the effective level (``domain.tls_policy.effective_policy``): once a
  host offers STARTTLS and the handshake fails we never retry that host in the clear
  (Postal and Haraka do; KumoMTA and this module do not), whatever the level.
* PIPELINING (RFC 2920) is not used: aiosmtplib 5.x reads exactly one reply per
  command and drops replies that arrive back to back, so commands go lock-step.
* Connections are pooled per (MX, IP, port, TLS level, login) and reused with RSET;
  one ``ssl.SSLContext`` per verification mode is cached, because building a
  context per connection costs about 6x in throughput (research/delivery.md §d).
* Nothing here logs addresses or content.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPResponse

from sealmail.delivery.mta_sts import MtaStsFetcher, sts_refetch_wanted
from sealmail.domain.outcomes import Attempt, AttemptStatus, TlsInfo
from sealmail.domain.tls_policy import (
    DestinationPolicy,
    TlsPolicy,
    VerifiedBy,
    effective_policy,
    mx_matches_sts,
)
from sealmail.domain.wire import canonical_message
from sealmail.net.dane import TlsaRecord, usable_records, verify_tlsa
from sealmail.net.dns import DnsLookupError, MxStatus, Resolver, TlsaStatus, to_ascii_domain

# RFC 3463 §2: class.subject.detail at the start of the reply text.
_ENHANCED_RE = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})(?=\s|$)")
_BAD_ADDRESS_CHARS = re.compile(r"[\x00-\x20<>\x7f]")
# A pooled connection idle for longer than this is probed with RSET before reuse.
PROBE_AFTER_SECONDS = 2.0
# OpenSSL X509 verify codes, for a detail line a human can act on.
_X509_EXPIRED, _X509_NOT_YET_VALID, _X509_HOSTNAME_MISMATCH = 10, 9, 62


@dataclass(frozen=True, slots=True)
class SmartHost:
    """Relay everything through one host, authenticating after TLS (RFC 4954 §4)."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    tls_level: TlsPolicy = TlsPolicy.REQUIRE_VERIFIED


@dataclass(frozen=True, slots=True)
class _Where:
    mx_host: str | None = None
    mx_ip: str | None = None
    tls: TlsInfo = field(default_factory=TlsInfo)


@dataclass(frozen=True, slots=True)
class _Hop:
    """One host to try, with the TLS level it must meet."""

    name: str
    port: int
    level: TlsPolicy
    verified_by: VerifiedBy = VerifiedBy.PKIX
    tlsa: tuple[TlsaRecord, ...] = ()
    auth: SmartHost | None = None
    blocked: str | None = None  # a policy reason not to connect at all


class _HopError(Exception):
    """Internal: this host could not take the message; try the next one."""

    def __init__(
        self,
        reason: str,
        detail: str,
        where: _Where,
        status: AttemptStatus = AttemptStatus.DEFERRED,
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.where, self.status = reason, detail, where, status

    def attempt(self, recipient: str) -> Attempt:
        return Attempt(
            recipient,
            self.status,
            self.reason,
            self.detail,
            mx_host=self.where.mx_host,
            mx_ip=self.where.mx_ip,
            tls=self.where.tls,
            destination_failure=self.status is AttemptStatus.DEFERRED,
        )


_PoolKey = tuple[str, str, int, TlsPolicy, str]


@dataclass(eq=False)
class _Session:
    smtp: aiosmtplib.SMTP
    key: _PoolKey
    where: _Where
    last_used: float = field(default_factory=time.monotonic)
    messages: int = 0


class OutboundTransport:
    """Delivers messages to recipient MXes (or a smart host) under a TLS policy.

    ``route_override`` maps a recipient domain to ``(host, port)`` and ``relay_all_to``
    sends every domain to one ``(host, port)`` (the capture sink); both skip MX,
    MTA-STS and DANE but still enforce the requested TLS level.  ``port`` is the MX
    port (25 in production).  A transport belongs to one event loop.
    """

    def __init__(
        self,
        *,
        ehlo_hostname: str,
        resolver: Resolver,
        mta_sts: MtaStsFetcher | None = None,
        dane: bool = False,
        ca_file: str | None = None,
        connect_timeout: float = 30.0,
        command_timeout: float = 300.0,
        max_connections_per_destination: int = 5,
        smarthost: SmartHost | None = None,
        route_override: dict[str, tuple[str, int]] | None = None,
        relay_all_to: tuple[str, int] | None = None,
        port: int = 25,
        idle_timeout: float = 30.0,
        max_messages_per_connection: int = 100,
    ) -> None:
        self._ehlo = ehlo_hostname
        self._resolver = resolver
        self._sts = mta_sts
        self._dane = dane
        self._ca_file = ca_file
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._max_connections = max_connections_per_destination
        self._smarthost = smarthost
        self._routes = {to_ascii_domain(k): v for k, v in (route_override or {}).items()}
        self._relay_all = relay_all_to
        self._port = port
        self._idle_timeout = idle_timeout
        self._max_messages = max_messages_per_connection
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self._idle: dict[_PoolKey, list[_Session]] = {}
        self._limits: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- public API ------------------------------------------------------------------

    async def deliver(
        self, domain: str, mail_from: str, recipients: list[str], message: bytes, policy: TlsPolicy
    ) -> list[Attempt]:
        """Try to deliver ``message`` to ``recipients`` (all at ``domain``) once."""
        attempts = await self._deliver_once(domain, mail_from, recipients, message, policy)
        if self._sts is not None and sts_refetch_wanted(attempts):
            # RFC 8461 §5.1: before deferring for a TLS failure at an enforce hop, look for
            # an updated policy (the domain may have moved its MX or relaxed the mode).
            if await self._sts.refreshed(domain):
                attempts = await self._deliver_once(domain, mail_from, recipients, message, policy)
        return attempts

    async def _deliver_once(
        self, domain: str, mail_from: str, recipients: list[str], message: bytes, policy: TlsPolicy
    ) -> list[Attempt]:
        if self._closed:
            raise RuntimeError("OutboundTransport is closed")
        self._sweep_idle()
        bad = [r for r in [mail_from, *recipients] if _BAD_ADDRESS_CHARS.search(r)]
        if bad or any("@" not in r for r in recipients):
            return [
                Attempt(
                    r,
                    AttemptStatus.FAILED,
                    "invalid_address",
                    "address cannot be sent in an SMTP command",
                )
                for r in recipients
            ]
        try:
            hops = await self._plan(domain, policy)
        except _HopError as exc:
            return [exc.attempt(r) for r in recipients]

        failure: _HopError | None = None
        for hop in hops:
            if hop.blocked is not None:
                failure = _HopError("tls_required", hop.blocked, _Where(hop.name))
                continue
            try:
                addresses = await self._resolver.resolve_addresses(hop.name)
            except (DnsLookupError, ValueError) as exc:
                failure = _HopError("dns_failure", str(exc), _Where(hop.name))
                continue
            if not addresses:
                failure = _HopError("dns_failure", f"{hop.name} has no address records", _Where(hop.name))
                continue
            for ip in addresses:
                try:
                    return await self._deliver_via(hop, ip, mail_from, recipients, message)
                except _HopError as exc:
                    failure = exc
        if failure is None:  # _plan never returns an empty list
            raise RuntimeError("no delivery route was planned")
        return [failure.attempt(r) for r in recipients]

    async def close(self) -> None:
        """Close every pooled connection politely (QUIT) and refuse further deliveries."""
        self._closed = True
        sessions = [s for idle in self._idle.values() for s in idle]
        self._idle.clear()
        await asyncio.gather(*(_quit(s) for s in sessions), *self._closing)
        # Aborted transports release their sockets on the next loop iteration.
        await asyncio.sleep(0)

    # -- routing and policy ----------------------------------------------------------

    async def _plan(self, domain: str, policy: TlsPolicy) -> list[_Hop]:
        if self._smarthost is not None:
            relay = self._smarthost
            level = policy.at_least(relay.tls_level)
            if relay.username is not None:
                # RFC 4954 §4: credentials never cross an unencrypted connection.
                level = level.at_least(TlsPolicy.REQUIRE)
            return [_Hop(relay.host, relay.port, level, auth=relay)]
        try:
            ascii_domain = to_ascii_domain(domain)
        except ValueError as exc:
            raise _HopError("bad_domain", str(exc), _Where(), AttemptStatus.FAILED) from exc
        fixed = self._routes.get(ascii_domain) or self._relay_all
        if fixed is not None:
            return [_Hop(fixed[0], fixed[1], policy)]

        mx = await self._resolver.resolve_mx(ascii_domain)
        if mx.status is not MxStatus.OK:
            status = AttemptStatus.FAILED if mx.permanent else AttemptStatus.DEFERRED
            raise _HopError(mx.status.value, mx.detail, _Where(), status)
        sts = DestinationPolicy()
        if self._sts is not None:
            sts = await self._sts.destination_policy(ascii_domain)
        hosts = mx.hosts
        if sts.sts_mode == "enforce":
            # RFC 8461 §4.1: under enforce, never connect to an MX outside the policy.
            hosts = tuple(h for h in hosts if mx_matches_sts(h.name, sts.sts_mx_patterns))
            if not hosts and self._sts is not None:
                # RFC 8461 §5.1: look for an updated policy before deferring on a mismatch.
                sts = await self._sts.destination_policy(ascii_domain, refresh=True)
                matching = (h for h in mx.hosts if mx_matches_sts(h.name, sts.sts_mx_patterns))
                hosts = tuple(matching) if sts.sts_mode == "enforce" else mx.hosts
            if not hosts:
                raise _HopError(
                    "tls_required", f"no MX of {ascii_domain} matches its MTA-STS policy", _Where()
                )
        hops = []
        for host in hosts:
            hops.append(await self._hop_for(host.name, policy, sts, mx_secure=mx.secure))
        return hops

    async def _hop_for(
        self, name: str, requested: TlsPolicy, sts: DestinationPolicy, *, mx_secure: bool
    ) -> _Hop:
        destination, blocked = sts, None
        tlsa: tuple[TlsaRecord, ...] = ()
        floor = TlsPolicy.OPPORTUNISTIC
        # RFC 7672 §2.2.1: TLSA records count only behind a DNSSEC-validated MX RRset.
        if (self._dane or requested is TlsPolicy.DANE) and mx_secure:
            result = await self._resolver.tlsa(name, self._port)
            if result.status is TlsaStatus.FAILED:
                # RFC 7672 §2.2: a failed TLSA lookup for a secure MX defers that MX.
                blocked = f"TLSA lookup for {name} failed"
            elif result.usable:
                records = usable_records(result.records)
                if records:
                    destination, tlsa = replace(sts, dane_usable=True), records
                else:
                    # RFC 7672 §2.2: only unusable records still mean mandatory TLS.
                    floor = TlsPolicy.REQUIRE
        level = effective_policy(requested, destination).at_least(floor)
        if level is TlsPolicy.DANE and not tlsa and blocked is None:
            blocked = f"no DNSSEC-validated TLSA records for {name}"
        verified_by = VerifiedBy.PKIX
        if level is TlsPolicy.DANE:
            verified_by = VerifiedBy.DANE
        elif sts.sts_mode == "enforce" and requested.rank < TlsPolicy.REQUIRE_VERIFIED.rank:
            verified_by = VerifiedBy.MTA_STS
        return _Hop(name, self._port, level, verified_by, tlsa, blocked=blocked)

    # -- connections -----------------------------------------------------------------

    async def _deliver_via(
        self, hop: _Hop, ip: str, mail_from: str, recipients: list[str], message: bytes
    ) -> list[Attempt]:
        limit = self._limits.setdefault((hop.name, hop.port), asyncio.Semaphore(self._max_connections))
        async with limit:
            session, unprobed = await self._checkout(hop, ip)
            try:
                attempts = await self._transact_on(session, hop, mail_from, recipients, message)
            except _HopError as exc:
                _abort(session.smtp)
                if not (unprobed and exc.reason == "connection_failed"):
                    raise
                # A pooled connection reused without the RSET probe was gone before any
                # data went out: nothing was delivered, so try once on a new connection.
                session = await self._open(hop, ip, session.key)
                try:
                    attempts = await self._transact_on(session, hop, mail_from, recipients, message)
                except _HopError:
                    _abort(session.smtp)
                    raise
            self._release(session)
            return attempts

    async def _transact_on(
        self, session: _Session, hop: _Hop, mail_from: str, recipients: list[str], message: bytes
    ) -> list[Attempt]:
        where = session.where
        if where.tls.verified and hop.level is TlsPolicy.REQUIRE_VERIFIED:
            # A pooled session may have been opened for another request with the
            # same level; record what vouched for it on *this* delivery.
            where = replace(where, tls=replace(where.tls, verified_by=hop.verified_by))
        return await _transact(session, where, mail_from, recipients, message, self._command_timeout)

    async def _checkout(self, hop: _Hop, ip: str) -> tuple[_Session, bool]:
        """A pooled or new session; the flag says it was reused without the RSET probe."""
        key: _PoolKey = (
            hop.name,
            ip,
            hop.port,
            hop.level,
            hop.auth.username or "" if hop.auth else "",
        )
        idle = self._idle.get(key, [])
        while idle:
            session = idle.pop()
            age = time.monotonic() - session.last_used
            if age > self._idle_timeout or not session.smtp.is_connected:
                _abort(session.smtp)
                continue
            if age <= PROBE_AFTER_SECONDS:
                # Released a moment ago after a finished transaction (a final reply to the
                # data, or an RSET after a refusal): no state is left to clear, and a
                # connection lost meanwhile is retried on a new one by the caller.  This
                # saves a round trip per message on a busy destination.
                return session, True
            try:
                # RFC 5321 §4.1.1.5: RSET clears any leftover transaction state, and
                # doubles as a liveness probe for the idle connection.
                await session.smtp.rset(timeout=self._connect_timeout)
            except (aiosmtplib.SMTPException, OSError):
                _abort(session.smtp)
                continue
            return session, False
        return await self._open(hop, ip, key), False

    def _release(self, session: _Session) -> None:
        idle = self._idle.setdefault(session.key, [])
        if (
            self._closed
            or not session.smtp.is_connected
            or session.messages >= self._max_messages
            or len(idle) >= self._max_connections
        ):
            task = asyncio.get_running_loop().create_task(_quit(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return
        session.last_used = time.monotonic()
        idle.append(session)

    def _sweep_idle(self) -> None:
        now = time.monotonic()
        for idle in self._idle.values():
            for session in [s for s in idle if now - s.last_used > self._idle_timeout]:
                idle.remove(session)
                _abort(session.smtp)

    async def _open(self, hop: _Hop, ip: str, key: _PoolKey) -> _Session:
        # A failure at a hop that had to verify names what demanded it (mta-sts, dane):
        # the MTA-STS refetch and TLS reports (RFC 8460 policy-type) read it.
        demanded = hop.level in (TlsPolicy.REQUIRE_VERIFIED, TlsPolicy.DANE)
        where = _Where(hop.name, ip, TlsInfo(verified_by=hop.verified_by) if demanded else TlsInfo())
        smtp = aiosmtplib.SMTP(
            hostname=ip,
            port=hop.port,
            local_hostname=self._ehlo,
            timeout=self._command_timeout,
            start_tls=False,
        )
        try:
            await smtp.connect(timeout=self._connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise _HopError("connection_failed", f"{hop.name} greeted with {exc.code}", where) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise _HopError(
                "connection_failed", f"cannot connect to {hop.name}: {type(exc).__name__}", where
            ) from exc
        try:
            await _hello(smtp)
            tls = TlsInfo()
            if smtp.supports_extension("starttls"):
                tls = await self._starttls(smtp, hop, where)
            elif hop.level is not TlsPolicy.OPPORTUNISTIC:
                raise _HopError("tls_required", f"{hop.name} offers no STARTTLS", where)
            where = replace(where, tls=tls)
            if hop.auth is not None and hop.auth.username is not None:
                await _login(smtp, hop, where)
        except _HopError:
            _abort(smtp)
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            _abort(smtp)
            raise _HopError(
                "connection_failed", f"session with {hop.name} failed: {type(exc).__name__}", where
            ) from exc
        return _Session(smtp, key, where)

    async def _starttls(self, smtp: aiosmtplib.SMTP, hop: _Hop, where: _Where) -> TlsInfo:
        # No plaintext fallback on a host that offered STARTTLS and then failed the
        # handshake: that is exactly what a downgrade attacker would provoke.
        reason = "tls_failed" if hop.level is TlsPolicy.OPPORTUNISTIC else "tls_required"
        context = self._tls_context(verify=hop.level is TlsPolicy.REQUIRE_VERIFIED)
        try:
            await smtp.starttls(server_hostname=hop.name, tls_context=context, timeout=self._connect_timeout)
        except ssl.SSLCertVerificationError as exc:
            raise _HopError(reason, _describe_verify_error(exc, hop.name), where) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if hop.level is TlsPolicy.OPPORTUNISTIC:
                return TlsInfo()  # STARTTLS refused (454): indistinguishable from not offered
            raise _HopError(reason, f"{hop.name} refused STARTTLS ({exc.code})", where) from exc
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
            raise _HopError(
                reason, f"TLS handshake with {hop.name} failed: {type(exc).__name__}", where
            ) from exc
        sslobj = smtp.get_transport_info("ssl_object")
        cipher = sslobj.cipher() if sslobj is not None else None
        info = TlsInfo(version=sslobj.version() if sslobj else None, cipher=cipher[0] if cipher else None)
        if hop.level is TlsPolicy.DANE:
            leaf = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
            result = verify_tlsa(hop.tlsa, leaf or b"", _peer_chain(sslobj), hostnames=[hop.name])
            if not leaf or not result.matched:
                raise _HopError(
                    "tls_required",
                    f"certificate of {hop.name} does not match its TLSA records ({result.detail})",
                    replace(where, tls=info),
                )
            info = replace(info, verified=True, verified_by=VerifiedBy.DANE)
        elif hop.level is TlsPolicy.REQUIRE_VERIFIED:
            info = replace(info, verified=True, verified_by=hop.verified_by)
        # RFC 3207 §4.2: forget what was learnt before TLS and ask again.
        await _hello(smtp)
        return info

    def _tls_context(self, *, verify: bool) -> ssl.SSLContext:
        key = (verify, self._ca_file)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if verify:
                if self._ca_file is not None:
                    context.load_verify_locations(cafile=self._ca_file)
            else:
                # Encryption without authentication (Postfix "encrypt"/"may"); DANE
                # authenticates separately against TLSA after the handshake.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[key] = context
        return context


# -- one SMTP transaction ----------------------------------------------------------------


async def _transact(
    session: _Session,
    where: _Where,
    mail_from: str,
    recipients: list[str],
    message: bytes,
    data_timeout: float,
) -> list[Attempt]:
    smtp = session.smtp
    options: list[bytes] = []
    encoding = "ascii"
    envelope = [_ascii_domain_address(r) for r in recipients]
    sender = _ascii_domain_address(mail_from) if mail_from else ""
    if not (sender.isascii() and all(r.isascii() for r in envelope) and _headers_ascii(message)):
        if not smtp.supports_extension("smtputf8"):
            # RFC 6531 §3.2: without SMTPUTF8 the message cannot be sent to this server.
            return _all(
                recipients,
                where,
                AttemptStatus.FAILED,
                "smtputf8_unsupported",
                f"{where.mx_host} lacks SMTPUTF8",
            )
        options.append(b"SMTPUTF8")
        encoding = "utf-8"
    if not message.isascii():
        if not smtp.supports_extension("8bitmime"):
            # RFC 6152 §3: 8-bit data only to servers that advertise 8BITMIME.
            return _all(
                recipients,
                where,
                AttemptStatus.FAILED,
                "8bitmime_unsupported",
                f"{where.mx_host} lacks 8BITMIME",
            )
        options.append(b"BODY=8BITMIME")
    payload = _dot_stuff(message)
    if smtp.supports_extension("size"):
        limit = smtp.esmtp_extensions.get("size", "")
        if limit.isdigit() and 0 < int(limit) < len(payload):
            # RFC 1870 §6: do not send what the server already said it will refuse.
            return _all(
                recipients,
                where,
                AttemptStatus.FAILED,
                "message_too_large",
                f"{where.mx_host} takes at most {limit} bytes",
            )
        options.append(f"SIZE={len(payload)}".encode())

    results: dict[int, Attempt] = {}
    accepted: list[int] = []
    data_sent = False
    mail_cmd = b"MAIL FROM:<" + sender.encode(encoding) + b">" + b"".join(b" " + o for o in options)
    rcpt_cmds = [b"RCPT TO:<" + rcpt.encode(encoding) + b">" for rcpt in envelope]
    try:
        if smtp.supports_extension("pipelining") and _can_pipeline(smtp.protocol):
            # RFC 2920 §3.1: MAIL, every RCPT and DATA go out in one write; the replies
            # are then read in order.  One round trip instead of 2 + recipients.
            replies = await _pipelined(smtp, [mail_cmd, *rcpt_cmds, b"DATA"], data_timeout)
            mail_reply, rcpt_replies, reply = replies[0], replies[1:-1], replies[-1]
            if mail_reply.code != 250:
                await _rset_quietly(smtp)
                return [_from_reply(r, mail_reply, where) for r in recipients]
            for index, rcpt_reply in enumerate(rcpt_replies):
                if rcpt_reply.code in (250, 251):
                    accepted.append(index)
                else:
                    results[index] = _from_reply(recipients[index], rcpt_reply, where)
            if not accepted and reply.code == 354:
                # RFC 2920 §3.1: DATA was accepted although no recipient was; end the
                # empty transaction with a lone "." and reset.
                smtp.protocol.write(b".\r\n")  # type: ignore[union-attr]  # checked by _can_pipeline
                await smtp.protocol.read_response(timeout=data_timeout)  # type: ignore[union-attr]  # same
        else:
            reply = await smtp.execute_command(b"MAIL", b"FROM:<" + sender.encode(encoding) + b">", *options)
            if reply.code != 250:
                await _rset_quietly(smtp)
                return [_from_reply(r, reply, where) for r in recipients]
            for index, rcpt in enumerate(envelope):
                reply = await smtp.execute_command(b"RCPT", b"TO:<" + rcpt.encode(encoding) + b">")
                if reply.code in (250, 251):
                    accepted.append(index)
                else:
                    results[index] = _from_reply(recipients[index], reply, where)
            if accepted:
                reply = await smtp.execute_command(b"DATA")
        if accepted:
            if reply.code == 354 and smtp.protocol is not None:
                data_sent = True
                smtp.protocol.write(payload)
                reply = await smtp.protocol.read_response(timeout=data_timeout)
                session.messages += 1
            for index in accepted:
                results[index] = _from_reply(recipients[index], reply, where)
            if reply.code != 250:
                await _rset_quietly(smtp)
        else:
            await _rset_quietly(smtp)
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as exc:
        _abort(smtp)
        if not data_sent:
            raise _HopError(
                "connection_failed",
                f"connection to {where.mx_host} lost: {type(exc).__name__}",
                where,
            ) from exc
        # The end of data went out but no reply came: the server may or may not have
        # taken responsibility (RFC 5321 §4.1.1.4), so retry later and risk a duplicate.
        lost = Attempt(
            "",
            AttemptStatus.DEFERRED,
            "connection_failed",
            f"connection to {where.mx_host} lost after the message was sent; outcome unknown",
            mx_host=where.mx_host,
            mx_ip=where.mx_ip,
            tls=where.tls,
            destination_failure=True,
        )
        for index in accepted:
            results[index] = replace(lost, recipient=recipients[index])
    return [results[i] for i in range(len(recipients))]


def _can_pipeline(protocol: Any) -> bool:
    """aiosmtplib has no pipelining API; the reader below relies on these internals (5.x)."""
    return (
        protocol is not None
        and isinstance(getattr(protocol, "_buffer", None), bytearray)
        and all(hasattr(protocol, name) for name in ("_response_waiter", "_read_response_from_buffer"))
    )


async def _pipelined(
    smtp: aiosmtplib.SMTP, commands: list[bytes], reply_timeout: float
) -> list[SMTPResponse]:
    """Write all commands at once, then read one reply per command, in order.

    aiosmtplib expects one reply per command awaited in turn: its ``data_received`` drops
    whatever arrives while a parsed reply waits to be picked up, so replies the server
    sends in separate packets would be lost (it depends on timing whether they arrive
    together).  While the pipelined replies are read, every byte goes to the buffer
    instead, and replies are parsed from it here; the protocol's own waiter still
    reports a lost connection.
    """
    protocol: Any = smtp.protocol
    arrived = asyncio.Event()

    def collect(data: bytes) -> None:
        protocol._buffer.extend(data)
        arrived.set()

    # Transports look ``data_received`` up on every call: the instance attribute wins.
    protocol.data_received = collect
    try:
        protocol.write(b"".join(c + b"\r\n" for c in commands))
        replies: list[SMTPResponse] = []
        while len(replies) < len(commands):
            reply = protocol._read_response_from_buffer()
            if reply is not None:
                replies.append(reply)
                continue
            if len(protocol._buffer) > 64 * 1024:
                raise aiosmtplib.SMTPResponseException(500, "response too long")
            waiter = protocol._response_waiter
            if waiter is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost")
            arrived.clear()
            more = asyncio.ensure_future(arrived.wait())
            try:
                done, _ = await asyncio.wait(
                    {more, waiter}, timeout=reply_timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                more.cancel()
            if not done:
                raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for a pipelined reply")
            if waiter in done and more not in done:
                waiter.result()  # raises what ended the connection
                raise aiosmtplib.SMTPServerDisconnected("connection lost")
        return replies
    finally:
        del protocol.data_received
        protocol._response_pending = False


def _from_reply(recipient: str, reply: SMTPResponse, where: _Where) -> Attempt:
    match = _ENHANCED_RE.match(reply.message)
    enhanced = match.group(1) if match else None
    code = reply.code
    if 200 <= code < 300:
        status, reason = AttemptStatus.DELIVERED, "delivered"
    elif 400 <= code < 500:
        status, reason = AttemptStatus.DEFERRED, "temporary_failure"
    elif 500 <= code < 600:
        invalid = enhanced is not None and enhanced.startswith("5.1.")
        status, reason = AttemptStatus.FAILED, "invalid_recipient" if invalid else "rejected"
    else:
        status, reason = AttemptStatus.DEFERRED, "protocol_error"
    return Attempt(
        recipient,
        status,
        reason,
        f"{where.mx_host} answered {code}",
        smtp_code=code,
        enhanced_code=enhanced,
        reply=reply.message,
        mx_host=where.mx_host,
        mx_ip=where.mx_ip,
        tls=where.tls,
        # 421 is the server closing the channel (RFC 5321 §3.8): a destination problem.
        destination_failure=code == 421,
    )


def _all(
    recipients: list[str], where: _Where, status: AttemptStatus, reason: str, detail: str
) -> list[Attempt]:
    return [
        Attempt(r, status, reason, detail, mx_host=where.mx_host, mx_ip=where.mx_ip, tls=where.tls)
        for r in recipients
    ]


async def _hello(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        # RFC 5321 §4.1.4: fall back to HELO for servers without ESMTP.
        await smtp.helo()


async def _login(smtp: aiosmtplib.SMTP, hop: _Hop, where: _Where) -> None:
    if hop.auth is None or hop.auth.username is None:
        return
    if not where.tls.version:
        raise _HopError("tls_required", f"refusing to send credentials to {hop.name} without TLS", where)
    try:
        await smtp.login(hop.auth.username, hop.auth.password or "")
    except aiosmtplib.SMTPException as exc:
        code = getattr(exc, "code", None)
        raise _HopError("auth_failed", f"{hop.name} refused the login ({code})", where) from exc


async def _rset_quietly(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        _abort(smtp)


async def _quit(session: _Session) -> None:
    try:
        if session.smtp.is_connected:
            await session.smtp.execute_command(b"QUIT", timeout=5.0)
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        _abort(session.smtp)


def _abort(smtp: aiosmtplib.SMTP) -> None:
    """Drop the connection now.

    A plain close() on a TLS transport waits for the peer's close_notify, which can
    outlive the event loop and leak the socket; once QUIT was answered, or the
    session is being abandoned, there is nothing left to protect.
    """
    transport = smtp.transport
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    smtp.close()


def _describe_verify_error(exc: ssl.SSLCertVerificationError, host: str) -> str:
    code = exc.verify_code
    if code == _X509_HOSTNAME_MISMATCH:
        return f"certificate name mismatch for {host}"
    if code == _X509_EXPIRED:
        return f"certificate of {host} expired"
    if code == _X509_NOT_YET_VALID:
        return f"certificate of {host} is not yet valid"
    return f"certificate of {host} not trusted: {exc.verify_message}"


def _peer_chain(sslobj: Any) -> list[bytes]:
    """The chain the server sent, as DER, when the ssl module can tell us."""
    if sslobj is None:
        return []
    getter = getattr(sslobj, "get_unverified_chain", None)  # Python >= 3.13
    if getter is None:
        # Python 3.11/3.12 have it only on the C object; without it DANE-TA works
        # for "2 0 0" records only.
        getter = getattr(getattr(sslobj, "_sslobj", None), "get_unverified_chain", None)
    if getter is None:
        return []
    chain = getter() or []
    return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]  # no public constant before 3.13


def _ascii_domain_address(address: str) -> str:
    """Use the A-label domain so an IDN domain alone does not require SMTPUTF8."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    try:
        return f"{local}@{to_ascii_domain(domain)}"
    except ValueError:
        return address


def _headers_ascii(message: bytes) -> bool:
    # RFC 6532: UTF-8 in header fields needs SMTPUTF8; the body needs only 8BITMIME.
    end = min(
        (i for i in (message.find(b"\r\n\r\n"), message.find(b"\n\n")) if i >= 0),
        default=len(message),
    )
    return message[:end].isascii()


def _dot_stuff(message: bytes) -> bytes:
    """Canonical, leading dots doubled, terminated by CRLF.CRLF (RFC 5321 §4.5.2).

    ``canonical_message`` runs again here (cheap when the message already is) so no NUL
    and no bare CR or LF reaches the wire whichever path built the payload.
    """
    lines = canonical_message(message).split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return body + b".\r\n"
