"""Connections to destination hosts: opened with STARTTLS at the hop's level, pooled, reused.

Connections are pooled per (MX, IP, port, TLS level, login) and reused with RSET; one
``ssl.SSLContext`` per verification mode is cached, because building a context per
connection costs about 6x in throughput (research/delivery.md §d).  Once a host offers
STARTTLS and the handshake fails it is never retried in the clear (Postal and Haraka do;
KumoMTA and this module do not), whatever the level.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, replace
from typing import Any

import aiosmtplib

from sealmail.delivery.routes import Hop, HopError, Where
from sealmail.delivery.transaction import PoolKey, Session, abort
from sealmail.domain.outcomes import TlsInfo, sent_digest
from sealmail.domain.tls_policy import TlsPolicy, VerifiedBy
from sealmail.net.dane import verify_tlsa

# A pooled connection idle for longer than this is probed with RSET before reuse.
PROBE_AFTER_SECONDS = 2.0
SWEEP_EVERY_SECONDS = 1.0
# OpenSSL X509 verify codes, for a detail line a human can act on.
_X509_EXPIRED, _X509_NOT_YET_VALID, _X509_HOSTNAME_MISMATCH = 10, 9, 62


@dataclass(frozen=True, slots=True)
class PoolOptions:
    ehlo_hostname: str
    ca_file: str | None = None
    connect_timeout: float = 30.0
    command_timeout: float = 300.0
    max_connections_per_destination: int = 5
    idle_timeout: float = 30.0
    max_messages_per_connection: int = 100


class ConnectionPool:
    """Open, pooled connections; belongs to one event loop."""

    def __init__(self, options: PoolOptions) -> None:
        self.options = options
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self._idle: dict[PoolKey, list[Session]] = {}
        self._limits: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._next_sweep = 0.0
        self.closed = False

    def limit(self, hop: Hop) -> asyncio.Semaphore:
        """Connections to one destination at a time, pooled and in use together."""
        key = (hop.name, hop.port)
        return self._limits.setdefault(key, asyncio.Semaphore(self.options.max_connections_per_destination))

    async def close(self) -> None:
        """Close every pooled connection politely (QUIT)."""
        self.closed = True
        sessions = [s for idle in self._idle.values() for s in idle]
        self._idle.clear()
        await asyncio.gather(*(_quit(s) for s in sessions), *self._closing)
        # Aborted transports release their sockets on the next loop iteration.
        await asyncio.sleep(0)

    async def checkout(self, hop: Hop, ip: str) -> tuple[Session, bool]:
        """A pooled or new session; the flag says it was reused without the RSET probe."""
        key: PoolKey = (
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
            if age > self.options.idle_timeout or not session.smtp.is_connected:
                abort(session.smtp)
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
                await session.smtp.rset(timeout=self.options.connect_timeout)
            except (aiosmtplib.SMTPException, OSError):
                abort(session.smtp)
                continue
            return session, False
        return await self.open(hop, ip, key), False

    def release(self, session: Session) -> None:
        idle = self._idle.setdefault(session.key, [])
        if (
            self.closed
            or not session.smtp.is_connected
            or session.messages >= self.options.max_messages_per_connection
            or len(idle) >= self.options.max_connections_per_destination
        ):
            task = asyncio.get_running_loop().create_task(_quit(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return
        session.last_used = time.monotonic()
        idle.append(session)

    def sweep_idle(self) -> None:
        """Drop connections idle past ``idle_timeout``; does the walk at most once a second.

        It is called before every delivery, and walked every destination ever seen each
        time (a destination with no idle connection left stayed in the map): a cost per
        message that grew with the number of destinations.  ``checkout`` still checks the
        age of the connection it takes, so a sweep a second late reuses nothing stale.
        """
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_SECONDS
        for key, idle in list(self._idle.items()):
            for session in [s for s in idle if now - s.last_used > self.options.idle_timeout]:
                idle.remove(session)
                abort(session.smtp)
            if not idle:
                del self._idle[key]

    async def open(self, hop: Hop, ip: str, key: PoolKey) -> Session:
        # A failure at a hop that had to verify names what demanded it (mta-sts, dane):
        # the MTA-STS refetch and TLS reports (RFC 8460 policy-type) read it.
        demanded = hop.level in (TlsPolicy.REQUIRE_VERIFIED, TlsPolicy.DANE)
        where = Where(hop.name, ip, TlsInfo(verified_by=hop.verified_by) if demanded else TlsInfo())
        smtp = aiosmtplib.SMTP(
            hostname=ip,
            port=hop.port,
            local_hostname=self.options.ehlo_hostname,
            timeout=self.options.command_timeout,
            start_tls=False,
        )
        try:
            await smtp.connect(timeout=self.options.connect_timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            raise HopError("connection_failed", f"{hop.name} greeted with {exc.code}", where) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise HopError(
                "connection_failed", f"cannot connect to {hop.name}: {type(exc).__name__}", where
            ) from exc
        try:
            await _hello(smtp)
            tls = TlsInfo()
            if smtp.supports_extension("starttls"):
                tls = await self._starttls(smtp, hop, where)
            elif hop.level is not TlsPolicy.OPPORTUNISTIC:
                raise HopError("tls_required", f"{hop.name} offers no STARTTLS", where)
            where = replace(where, tls=tls)
            if hop.auth is not None and hop.auth.username is not None:
                await _login(smtp, hop, where)
        except HopError:
            abort(smtp)
            raise
        except (aiosmtplib.SMTPException, OSError) as exc:
            abort(smtp)
            raise HopError(
                "connection_failed", f"session with {hop.name} failed: {type(exc).__name__}", where
            ) from exc
        return Session(smtp, key, where)

    async def _starttls(self, smtp: aiosmtplib.SMTP, hop: Hop, where: Where) -> TlsInfo:
        # No plaintext fallback on a host that offered STARTTLS and then failed the
        # handshake: that is exactly what a downgrade attacker would provoke.
        reason = "tls_failed" if hop.level is TlsPolicy.OPPORTUNISTIC else "tls_required"
        context = self._tls_context(verify=hop.level is TlsPolicy.REQUIRE_VERIFIED)
        try:
            await smtp.starttls(
                server_hostname=hop.name, tls_context=context, timeout=self.options.connect_timeout
            )
        except ssl.SSLCertVerificationError as exc:
            raise HopError(reason, _describe_verify_error(exc, hop.name), where) from exc
        except aiosmtplib.SMTPResponseException as exc:
            if hop.level is TlsPolicy.OPPORTUNISTIC:
                return TlsInfo()  # STARTTLS refused (454): indistinguishable from not offered
            raise HopError(reason, f"{hop.name} refused STARTTLS ({exc.code})", where) from exc
        except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
            raise HopError(
                reason, f"TLS handshake with {hop.name} failed: {type(exc).__name__}", where
            ) from exc
        info = _verified(smtp.get_transport_info("ssl_object"), hop, where)
        # RFC 3207 §4.2: forget what was learnt before TLS and ask again.
        await _hello(smtp)
        return info

    def _tls_context(self, *, verify: bool) -> ssl.SSLContext:
        ca_file = self.options.ca_file
        key = (verify, ca_file)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context()
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            if verify:
                if ca_file is not None:
                    context.load_verify_locations(cafile=ca_file)
            else:
                # Encryption without authentication (Postfix "encrypt"/"may"); DANE
                # authenticates separately against TLSA after the handshake.
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._contexts[key] = context
        return context


def _verified(sslobj: Any, hop: Hop, where: Where) -> TlsInfo:
    """What the handshake negotiated, and what vouched for the certificate at this level."""
    cipher = sslobj.cipher() if sslobj is not None else None
    info = TlsInfo(version=sslobj.version() if sslobj else None, cipher=cipher[0] if cipher else None)
    info = replace(info, peer_cert_sha256=sent_digest(sslobj.getpeercert(True) if sslobj else None))
    if hop.level is TlsPolicy.DANE:
        leaf = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        result = verify_tlsa(hop.tlsa, leaf or b"", _peer_chain(sslobj), hostnames=[hop.name])
        if not leaf or not result.matched:
            raise HopError(
                "tls_required",
                f"certificate of {hop.name} does not match its TLSA records ({result.detail})",
                replace(where, tls=info),
            )
        return replace(info, verified=True, verified_by=VerifiedBy.DANE)
    if hop.level is TlsPolicy.REQUIRE_VERIFIED:
        return replace(info, verified=True, verified_by=hop.verified_by)
    return info


async def _hello(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.ehlo()
    except aiosmtplib.SMTPHeloError:
        # RFC 5321 §4.1.4: fall back to HELO for servers without ESMTP.
        await smtp.helo()


async def _login(smtp: aiosmtplib.SMTP, hop: Hop, where: Where) -> None:
    if hop.auth is None or hop.auth.username is None:
        return
    if not where.tls.version:
        raise HopError("tls_required", f"refusing to send credentials to {hop.name} without TLS", where)
    try:
        await smtp.login(hop.auth.username, hop.auth.password or "")
    except aiosmtplib.SMTPException as exc:
        code = getattr(exc, "code", None)
        raise HopError("auth_failed", f"{hop.name} refused the login ({code})", where) from exc


async def _quit(session: Session) -> None:
    try:
        if session.smtp.is_connected:
            await session.smtp.execute_command(b"QUIT", timeout=5.0)
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        abort(session.smtp)


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
