"""The SMTP submission gateway: a thin adapter from SMTP (RFC 5321, RFC 6409) to ``Messages``.

A message submitted here is turned into the same ``Submission`` the raw API endpoint
builds (``compose.submission_from_raw``) and stored by the same ``Messages.accept``, so
rows, events and audit entries are identical whichever door it came through.

Who may submit:

* a client that ran STARTTLS and then AUTH PLAIN or LOGIN with an SMTP credential
  (``Tenancy.authenticate_smtp``); its stream is the credential's stream;
* an outbound connector (Microsoft 365, Google Workspace) recognised by its peer address
  (``smtp_connector_networks``) or by a TLS client certificate chaining to
  ``smtp_connector_client_ca``; its mail is accepted for ``smtp_connector_tenant`` on the
  transactional stream.

Everyone else gets 530 at MAIL and RCPT: there is no open relay.  Every mail transaction
needs TLS first (RFC 3207 §4 lets a server insist), connectors included, because what
flows through here is ePHI (HIPAA §164.312(e)(1) transmission security).

The inbound listener (``smtp_inbound_port``, port 25 behind the MX of the return-path
domains) is the other door: remote MTAs and feedback loops deliver bounces (RFC 3464)
and complaints (RFC 5965) there without AUTH.  It accepts exactly two kinds of recipient —
a signed return path whose tag verifies (``bounces/return_path.py``) and the feedback-loop
address — answers a bad tag with 550 5.1.1 and anything else with 550 5.7.1 (no relay),
and hands the data to ``bounces/inbound.py`` instead of message intake.  STARTTLS is
required there too: a DSN may carry the original message back, and that is ePHI.

aiosmtpd runs the protocol in its own thread and event loop.  Everything that blocks
(argon2 verification, database reads, ``accept``) runs in that loop's executor so one
slow login never stalls the other connections.  Logs carry identifiers only: tenant,
credential and message ids and reasons, never addresses, subjects or content.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import enum
import functools
import ipaddress
import logging
import ssl
from base64 import b64decode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr, Final, TypeVar

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session, TLSSetupException

from sealmail.app import Services
from sealmail.bounces.inbound import ReportOutcome
from sealmail.bounces.return_path import ReportAddress
from sealmail.config import ConfigError
from sealmail.domain import smtp_replies as replies
from sealmail.domain.addresses import Address, InvalidAddress, parse_address
from sealmail.domain.intake_limits import Rule
from sealmail.domain.smtp_replies import Reply
from sealmail.domain.tls_policy import Stream
from sealmail.errors import MessageRefused, PolicyRejected, ValidationFailed
from sealmail.limits.service import FailureThrottle
from sealmail.messages.compose import intake_limits, submission_from_raw
from sealmail.secureline.harvest import harvest
from sealmail.store import db
from sealmail.tenancy.service import Principal

__all__ = ["GatewayEvent", "SmtpGateway", "server_tls_context"]

log = structlog.get_logger("sealmail.smtp")

T = TypeVar("T")

# Failed AUTH attempts one connection may make; the next failure is answered 421 and the
# connection closed, so password guessing costs a new TCP and TLS handshake each time.
MAX_AUTH_FAILURES: Final = 3
# How long ``stop`` waits for messages whose ``accept`` is already running.
DRAIN_SECONDS: Final = 30.0
# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including code and CRLF.
_MAX_REASON_CHARS: Final = 400

# Replies the shared catalogue (sealmail.domain.smtp_replies) does not have yet.
# RFC 5321 §3.8: 421 may answer any command when the server is closing the channel;
# RFC 3463 X.7.0 "other or undefined security status".
S421_TOO_MANY_AUTH_FAILURES: Final = Reply(
    421, "4.7.0", "Too many failed authentication attempts, closing connection"
)
# RFC 4954 §4: a client response that is not valid base64 (or, RFC 4616, not a valid
# PLAIN message) is answered 501 5.5.2.
S501_BAD_AUTH_RESPONSE: Final = Reply(501, "5.5.2", "Cannot decode the authentication response")
# RFC 3463 X.6.0 "other or undefined media error": the message itself is unusable.
S554_CONTENT_REJECTED: Final = Reply(554, "5.6.0", "Message content rejected")

# RFC 3463 X.1.1 "bad destination mailbox address": a return path whose tag does not
# verify was never ours to hand out.
S550_BAD_RETURN_PATH: Final = Reply(550, "5.1.1", "Bad destination mailbox address")
S250_REPORT_RECEIVED: Final = Reply(250, "2.0.0", "Report received")
# An inbound report concerns one recipient; a handful covers MTAs that batch.
MAX_REPORT_RECIPIENTS: Final = 10

# Each intake rule's permanent reply; the rest get S554_MESSAGE_REFUSED.
_REFUSAL_REPLIES: Final[dict[str, Reply]] = {
    Rule.HEADER_TOO_LARGE: replies.S552_HEADER_TOO_BIG,
    Rule.HEADER_FIELD_TOO_LONG: replies.S552_HEADER_TOO_BIG,
    Rule.ROUTING_LOOP: replies.S554_ROUTING_LOOP,
}

# ValidationFailed fields that mean "this sender may not send as that address".
_SENDER_FIELDS: Final = frozenset({"from", "mail_from"})
# aiosmtpd's RFC 5321 §3.3 null reverse-path, as its address parser returns it.
_NULL_SENDER: Final = "<>"


class GatewayEvent(enum.StrEnum):
    """Log event names of the gateway."""

    STARTED = "smtp.started"
    STOPPED = "smtp.stopped"
    DRAIN_TIMEOUT = "smtp.drain_timeout"
    AUTH_SUCCEEDED = "smtp.auth_succeeded"
    AUTH_FAILED = "smtp.auth_failed"
    AUTH_LOCKED_OUT = "smtp.auth_locked_out"
    CONNECTOR_ADMITTED = "smtp.connector_admitted"
    REJECTED = "smtp.rejected"
    ACCEPTED = "smtp.accepted"
    ACCEPT_FAILED = "smtp.accept_failed"
    COMMAND_FAILED = "smtp.command_failed"
    TLS_FAILED = "smtp.tls_failed"
    REPORT_RECEIVED = "smtp.report_received"
    REPORT_FAILED = "smtp.report_failed"


@dataclass(frozen=True, slots=True)
class _Sender:
    """Who is submitting on this connection, and on which stream."""

    principal: Principal
    stream: Stream
    via: str  # "auth" or "connector"


class _Session(Session):
    """aiosmtpd's session plus the sender this connection authenticated as."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.sender: _Sender | None = None

    # aiosmtpd 1.4 sets ``login_data`` after every successful AUTH and logs a
    # deprecation warning each time; nothing here reads it, so store it quietly.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _Envelope(Envelope):
    """aiosmtpd's envelope plus the validated addresses of this transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.sender_address: str = ""  # normalised addr-spec; "" for the null sender
        self.recipients: list[Address] = []
        self.reports: list[ReportAddress] = []  # inbound listener: what each recipient is


# aiosmtpd's own replies that have a catalogue equivalent with an enhanced status code.
_STOCK_REPLIES: Final[dict[str, Reply]] = {
    # RFC 1870 §6.2-6.3: SIZE too large at MAIL, or more data than declared/allowed.
    "552 Error: message size exceeds fixed maximum message size": replies.S552_TOO_BIG,
    "552 Error: Too much mail data": replies.S552_TOO_BIG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": replies.S500_LINE_TOO_LONG,
    "220 Ready to start TLS": replies.S220_READY_TO_START_TLS,
    "221 Bye": replies.S221_BYE,
    "250 OK": replies.S250_OK,
    "503 Error: need MAIL command": replies.S503_BAD_SEQUENCE,
    "503 Error: need RCPT command": replies.S503_BAD_SEQUENCE,
    "503 Error: nested MAIL command": replies.S503_BAD_SEQUENCE,
    "503 Already authenticated": replies.S503_BAD_SEQUENCE,
    "504 5.5.4 Unrecognized authentication type": replies.S504_AUTH_MECHANISM_UNSUPPORTED,
    "538 5.7.11 Encryption required for requested authentication mechanism": (
        replies.S538_ENCRYPTION_REQUIRED_FOR_AUTH
    ),
}


def _one_line(text: str) -> str:
    """A reason made safe for a reply line: printable ASCII, one line, bounded length."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return cleaned[:_MAX_REASON_CHARS]


def _address_refusal(reply: Reply, exc: InvalidAddress) -> Reply:
    """``reply`` saying what is really wrong with the address, never the address itself.

    A well-formed address can still be unusable, e.g. on a special-use domain such as
    ``.test`` (RFC 6761 §6.2); "bad syntax" alone would send the user hunting for a typo.
    """
    return reply.with_text(_one_line(f"{reply.text}: {exc.reason}"))


def _peer_ip(peer: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP from aiosmtpd's ``session.peer`` (a sockaddr tuple)."""
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        ip = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; allow-lists are
    # written in IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def server_tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """The STARTTLS context: our certificate, TLS 1.2 or newer, client certs optional.

    ``ssl.create_default_context`` is deliberately not used: for a server it loads the
    system trust store, and every publicly issued client certificate would then count as
    a connector.  Only ``client_ca`` is trusted for client certificates.
    """
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # RFC 8996 deprecates TLS 1.0 and 1.1; HIPAA guidance (NIST SP 800-52r2) agrees.
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            # Ask for a certificate but do not demand one: submission clients with AUTH
            # have none.  A presented certificate that does not chain to client_ca fails
            # the handshake, so a non-empty ``peercert`` means "verified connector".
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"the SMTP gateway cannot load its TLS certificate/key ({type(exc).__name__}); "
            "set SEALMAIL_SMTP_TLS_CERT and SEALMAIL_SMTP_TLS_KEY (and "
            "SEALMAIL_SMTP_CONNECTOR_CLIENT_CA if used) to readable PEM files, "
            "or run `sealmail init`"
        ) from exc
    return context


class _GatewaySMTP(SMTP):
    """One connection's protocol state, with our AUTH, access and reply rules."""

    def __init__(self, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.gateway_handler = handler
        self.inbound = handler.inbound
        # Counted per connection, not per session: STARTTLS replaces the session.
        self.auth_failures = 0
        self.commit: asyncio.Future[None] | None = None

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _create_envelope(self) -> Envelope:
        return _Envelope()

    @property
    def tls_active(self) -> bool:
        return self._tls_protocol is not None

    async def push(self, status: AnyStr) -> None:
        # aiosmtpd's built-in replies carry no enhanced status code; use the catalogue's.
        if isinstance(status, str) and status in _STOCK_REPLIES:
            await super().push(str(_STOCK_REPLIES[status]))
            return
        if self.inbound and isinstance(status, str) and status.startswith("250-AUTH"):
            # aiosmtpd has no switch for not advertising AUTH; the inbound listener has
            # nothing to log in to (RFC 5321 relay, not RFC 6409 submission).
            return
        await super().push(status)

    # -- access ------------------------------------------------------------------------------
    async def check_auth_needed(self, caller_method: str) -> bool:
        """Refuse MAIL, RCPT, DATA (and VRFY, HELP) unless TLS is up and we know the sender.

        aiosmtpd calls this before those commands; returning True means a reply was sent.
        """
        session = self.session
        assert isinstance(session, _Session)
        if not self.tls_active:
            # RFC 3207 §4: a server may require STARTTLS before mail transactions.
            await self.push(str(replies.S530_MUST_STARTTLS))
            return True
        if self.inbound:
            # No AUTH here: handle_RCPT admits report addresses only.
            return False
        if session.sender is not None:
            return False
        connector = self.gateway_handler.connector_sender(session)
        if connector is not None:
            session.sender = connector
            log.info(
                GatewayEvent.CONNECTOR_ADMITTED,
                tenant_id=connector.principal.tenant_id,
                credential_id=connector.principal.credential_id,
            )
            return False
        # RFC 4954 §6: 530 5.7.0 when a command needs authentication first.  This is
        # the no-open-relay rule: nobody unknown may start a transaction.
        self.gateway_handler.count("auth_required")
        await self.push(str(replies.S530_AUTH_REQUIRED))
        return True

    # -- DATA ----------------------------------------------------------------------------------
    async def smtp_DATA(self, arg: str) -> None:
        try:
            await super().smtp_DATA(arg)
        finally:
            # The final reply has been written (or the client is gone): ``stop`` no
            # longer needs to wait for this transaction.
            if self.commit is not None:
                if not self.commit.done():
                    self.commit.set_result(None)
                self.commit = None

    def begin_commit(self) -> None:
        """Mark that the message is complete and being stored; ``stop`` waits for it."""
        self.commit = self.loop.create_future()
        self.gateway_handler.track(self.commit)

    # -- AUTH ----------------------------------------------------------------------------------
    # aiosmtpd's built-in mechanisms call a synchronous authenticator; argon2 takes tens
    # of milliseconds, so these overrides parse the same way and verify in a thread.
    # RFC 4954 §4: aiosmtpd neither advertises nor accepts AUTH before STARTTLS
    # (``auth_require_tls``), so passwords never cross the wire in the clear.

    async def smtp_AUTH(self, arg: str) -> None:
        if self.inbound:
            await self.push(str(replies.S502_NOT_IMPLEMENTED))
            return
        await super().smtp_AUTH(arg)
        if self.auth_failures >= MAX_AUTH_FAILURES and self.transport is not None:
            self.transport.close()

    async def auth_PLAIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self.challenge_auth("")
            if not isinstance(blob, bytes):
                return self._failed(None)  # challenge_auth has replied
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                return self._failed(S501_BAD_AUTH_RESPONSE)
        # RFC 4616 §2: [authzid] NUL authcid NUL passwd.  Acting as another identity
        # (an authzid other than the authcid) is not supported, so it is refused.
        parts = blob.split(b"\x00")
        if len(parts) != 3 or parts[0] not in (b"", parts[1]):
            return self._failed(S501_BAD_AUTH_RESPONSE)
        return await self._verify(parts[1], parts[2])

    async def auth_LOGIN(self, _: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self.challenge_auth(self.AuthLoginUsernameChallenge)
            if not isinstance(login, bytes):
                return self._failed(None)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                return self._failed(S501_BAD_AUTH_RESPONSE)
        password = await self.challenge_auth(self.AuthLoginPasswordChallenge)
        if not isinstance(password, bytes):
            return self._failed(None)
        return await self._verify(login, password)

    def _failed(self, reply: Reply | None) -> AuthResult:
        """Count a failed AUTH; the last allowed one is answered 421 and closes the line.

        ``reply`` None means aiosmtpd has already answered (client sent "*" or bad
        base64 to a challenge).
        """
        self.auth_failures += 1
        self.gateway_handler.count("auth_failed")
        if self.auth_failures >= MAX_AUTH_FAILURES:
            log.warning(
                GatewayEvent.AUTH_LOCKED_OUT,
                failures=self.auth_failures,
                peer=str(_peer_ip(self.session.peer if self.session else None)),
            )
            if reply is not None:
                reply = S421_TOO_MANY_AUTH_FAILURES
        else:
            log.info(GatewayEvent.AUTH_FAILED, failures=self.auth_failures)
        if reply is None:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=str(reply))

    async def _verify(self, login: bytes, password: bytes) -> AuthResult:
        try:
            username, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            username, secret = "", ""
        services = self.gateway_handler.services
        throttle = FailureThrottle(
            services.limiter,
            services.settings.auth_failure_limit,
            services.settings.auth_failure_window_seconds,
        )
        peer = str(_peer_ip(self.session.peer if self.session else None))
        # Counted across connections, per address and per username: a guesser who reconnects
        # after each lockout still runs out, and is refused before argon2 runs.
        keys = [f"smtpauth:ip:{peer}", f"smtpauth:user:{username[:128]}"]
        if await asyncio.to_thread(throttle.refused, keys) is not None:
            # RFC 4954 §6: 454 4.7.0 is a temporary failure; the client may try later.
            return self._failed(replies.S454_AUTH_TEMPORARY_FAILURE)
        found = None
        if username and secret:
            found = await asyncio.to_thread(services.tenancy.authenticate_smtp, username, secret)
        if found is None:
            await asyncio.to_thread(throttle.failed, keys)
            # authenticate_smtp has written the audit entry.
            return self._failed(replies.S535_AUTH_FAILED)
        principal, stream = found
        session = self.session
        assert isinstance(session, _Session)
        session.sender = _Sender(principal, stream, "auth")
        log.info(
            GatewayEvent.AUTH_SUCCEEDED, tenant_id=principal.tenant_id, credential_id=principal.credential_id
        )
        return AuthResult(success=True, message=str(replies.S235_AUTH_SUCCEEDED))


class _Handler:
    """aiosmtpd hooks: MAIL, RCPT and DATA checks and the hand-off to ``Messages``."""

    def __init__(self, services: Services, *, inbound: bool = False) -> None:
        self.services = services
        self.inbound = inbound
        self.report_intake = services.report_intake if inbound else None
        self.reports: collections.Counter[str] = collections.Counter()
        settings = services.settings
        self.connector_tenant = settings.smtp_connector_tenant
        self.connector_networks = [
            ipaddress.ip_network(n, strict=False) for n in settings.smtp_connector_networks
        ]
        self.connector_ca = settings.smtp_connector_client_ca is not None
        self.max_recipients = settings.max_recipients
        self.limits = intake_limits(settings)
        self.rejections: collections.Counter[str] = collections.Counter()
        self.inflight: set[asyncio.Future[Any]] = set()

    def count(self, reason: str) -> None:
        self.rejections[reason] += 1

    def _reject(self, reply: Reply, reason: str, session: _Session | None = None) -> str:
        self.count(reason)
        sender = session.sender if session else None
        log.info(
            GatewayEvent.REJECTED,
            reason=reason,
            code=reply.code,
            tenant_id=sender.principal.tenant_id if sender else None,
        )
        return str(reply)

    def connector_sender(self, session: _Session) -> _Sender | None:
        """The connector identity of this connection, or None."""
        if not self.connector_tenant:
            return None
        ip = _peer_ip(session.peer)
        by_network = ip is not None and any(
            ip.version == net.version and ip in net for net in self.connector_networks
        )
        # ``peercert`` is only non-empty for a certificate the handshake verified against
        # smtp_connector_client_ca (see server_tls_context).
        by_certificate = self.connector_ca and bool((session.ssl or {}).get("peercert"))
        if not (by_network or by_certificate):
            return None
        principal = Principal(self.connector_tenant, f"connector:{ip}", frozenset({"send"}))
        return _Sender(principal, Stream.TRANSACTIONAL, "connector")

    async def _run(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking work in the executor, tracked so ``stop`` can wait for it.

        The work is shielded: if the client disconnects mid-way, a started ``accept``
        still commits or rolls back as a whole rather than being abandoned.
        """
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(func, *args))
        self.track(future)
        return await asyncio.shield(future)

    def track(self, future: asyncio.Future[Any]) -> None:
        self.inflight.add(future)
        future.add_done_callback(self.inflight.discard)

    async def drain(self, server: asyncio.AbstractServer | None) -> None:
        if server is not None:
            server.close()
        # Connections already open may still finish a DATA; wait for those too.
        while self.inflight:
            await asyncio.wait(set(self.inflight))

    # -- hooks ---------------------------------------------------------------------------------
    async def handle_exception(self, error: Exception) -> str:
        """Any exception a command raised: 451, logged by class only.

        aiosmtpd's default would log the traceback and send ``500 Error: (Class) message``
        to the client, and either could carry an address from the failing command.
        """
        if isinstance(error, TLSSetupException):
            # A failed handshake (also: a client certificate not from the connector CA).
            self.count("tls_failed")
            log.info(GatewayEvent.TLS_FAILED, error=type(error.__cause__).__name__)
        else:
            self.count("internal_error")
            log.error(GatewayEvent.COMMAND_FAILED, error=type(error).__name__)
        return str(replies.S451_LOCAL_ERROR)

    async def handle_MAIL(
        self,
        server: _GatewaySMTP,
        session: _Session,
        envelope: _Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.inbound:
            return self._inbound_mail(session, envelope, address, mail_options)
        sender = session.sender
        assert sender is not None  # check_auth_needed ran first
        if address == _NULL_SENDER:
            # RFC 5321 §4.5.5: the null reverse-path; the header From is still checked.
            envelope.sender_address = ""
        else:
            parsed = self._sender_syntax(session, envelope, address)
            if isinstance(parsed, str):
                return parsed
            # Refuse an unverified sender domain now rather than after the client has
            # uploaded the whole message; accept() checks it again in its transaction.
            verified = await self._run(self._verified_domains, sender.principal.tenant_id)
            if parsed.ascii_domain.lower() not in verified:
                return self._reject(
                    replies.S550_SENDER_NOT_AUTHORIZED.with_text(
                        f"Sender address not authorized: {parsed.ascii_domain.lower()} is not "
                        "a verified sender domain of this tenant"
                    ),
                    "sender_not_authorized",
                    session,
                )
            envelope.sender_address = parsed.addr_spec
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.S250_SENDER_OK)

    def _sender_syntax(self, session: _Session, envelope: _Envelope, address: str) -> Address | str:
        """The parsed reverse-path, or the reply refusing it."""
        try:
            parsed = parse_address(address, "mail_from")
        except InvalidAddress as exc:
            return self._reject(
                _address_refusal(replies.S553_BAD_SENDER_ADDRESS, exc), "bad_sender_syntax", session
            )
        if parsed.needs_smtputf8 and not envelope.smtp_utf8:
            # RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 MAIL parameter.
            return self._reject(replies.S553_NON_ASCII_ADDRESS, "utf8_without_smtputf8", session)
        return parsed

    def _verified_domains(self, tenant_id: str) -> set[str]:
        with db.reader(self.services.engine) as conn:
            return self.services.tenancy.verified_domains(conn, tenant_id)

    async def handle_RCPT(
        self,
        server: _GatewaySMTP,
        session: _Session,
        envelope: _Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.inbound:
            return await self._inbound_rcpt(session, envelope, address, rcpt_options)
        if len(envelope.recipients) >= self.max_recipients:
            # RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in another
            # transaction; the recipients accepted so far stay accepted.
            return self._reject(replies.S452_TOO_MANY_RECIPIENTS, "too_many_recipients", session)
        try:
            parsed = parse_address(address, "rcpt_to")
        except InvalidAddress as exc:
            return self._reject(
                _address_refusal(replies.S553_BAD_ADDRESS, exc), "bad_recipient_syntax", session
            )
        if parsed.needs_smtputf8 and not envelope.smtp_utf8:
            return self._reject(replies.S553_NON_ASCII_ADDRESS, "utf8_without_smtputf8", session)
        envelope.recipients.append(parsed)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(replies.S250_RECIPIENT_OK)

    async def handle_DATA(self, server: _GatewaySMTP, session: _Session, envelope: _Envelope) -> str:
        if self.inbound:
            return await self._inbound_data(server, envelope)
        sender = session.sender
        assert sender is not None  # check_auth_needed ran before DATA
        raw = envelope.original_content or b""
        # From here until the reply is written, stop() waits: a client must not lose
        # its 250 for a message that was stored.
        server.begin_commit()
        try:
            response = await self._run(
                self._store, sender, raw, envelope.sender_address, tuple(envelope.recipients)
            )
        except MessageRefused as exc:
            # Permanent (RFC 5321 §4.2.1): the same bytes would break the same limit again.
            reply = _REFUSAL_REPLIES.get(exc.rule, replies.S554_MESSAGE_REFUSED)
            text = _one_line(f"{reply.text} ({exc.rule}): {exc.detail}")
            return self._reject(reply.with_text(text), str(exc.rule), session)
        except ValidationFailed as exc:
            errors = exc.extra.get("errors") or [{}]
            field = str(errors[0].get("field", ""))
            if field in _SENDER_FIELDS:
                reply = replies.S550_SENDER_NOT_AUTHORIZED
                reason = "sender_not_authorized"
            else:
                reply = S554_CONTENT_REJECTED
                reason = "invalid_message"
            # The detail names a field and a rule, never content (errors.py contract).
            return self._reject(reply.with_text(_one_line(exc.detail)), reason, session)
        except PolicyRejected as exc:
            # DLP block: a permanent refusal naming the detectors and places, never values.
            return self._reject(
                replies.S554_POLICY_REJECTED.with_text(_one_line(exc.detail)), "dlp_blocked", session
            )
        except Exception as exc:  # noqa: BLE001 — any other failure is a temporary 451
            # accept() is one transaction, so nothing is half-stored and the client's
            # retry (RFC 5321 §4.2.5) is safe.  Only the class is logged: an exception
            # message might quote content.
            self.count("internal_error")
            log.error(
                GatewayEvent.ACCEPT_FAILED, error=type(exc).__name__, tenant_id=sender.principal.tenant_id
            )
            return str(replies.S451_LOCAL_ERROR)
        message_id = str(response["id"])
        log.info(
            GatewayEvent.ACCEPTED,
            tenant_id=sender.principal.tenant_id,
            credential_id=sender.principal.credential_id,
            message_id=message_id,
            recipients=len(envelope.recipients),
            size=len(raw),
        )
        # RFC 5321 §4.2.5: 250 only once the message is safely stored (accept committed).
        return str(replies.S250_QUEUED.with_text(f"Ok: queued as {message_id}"))

    # -- the inbound listener: bounces and complaints --------------------------------------------
    def _inbound_mail(
        self, session: _Session, envelope: _Envelope, address: str, mail_options: list[str]
    ) -> str:
        if address == _NULL_SENDER:
            # RFC 3464 §2: DSNs come from the null reverse-path.
            envelope.sender_address = ""
        else:
            # Feedback loops send from real addresses; who sent a report does not matter,
            # only which recipient it names, so the sender is checked for syntax only.
            parsed = self._sender_syntax(session, envelope, address)
            if isinstance(parsed, str):
                return parsed
            envelope.sender_address = parsed.addr_spec
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.S250_SENDER_OK)

    async def _inbound_rcpt(
        self, session: _Session, envelope: _Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        assert self.report_intake is not None
        if len(envelope.reports) >= MAX_REPORT_RECIPIENTS:
            return self._reject(replies.S452_TOO_MANY_RECIPIENTS, "too_many_recipients", session)
        try:
            parsed = parse_address(address, "rcpt_to")
        except InvalidAddress as exc:
            return self._reject(
                _address_refusal(replies.S553_BAD_ADDRESS, exc), "bad_recipient_syntax", session
            )
        # The first call loads the VERP key from the database: off the event loop.
        found = await self._run(self.report_intake.recognise, parsed)
        if found.kind == "forged":
            return self._reject(S550_BAD_RETURN_PATH, "bad_return_path", session)
        if found.kind not in ("verp", "fbl"):
            # Anything but a report address, alone or next to one: this door relays nothing.
            return self._reject(replies.S550_RELAY_DENIED, "relay_denied", session)
        envelope.reports.append(found)
        envelope.recipients.append(parsed)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(replies.S250_RECIPIENT_OK)

    async def _inbound_data(self, server: _GatewaySMTP, envelope: _Envelope) -> str:
        intake = self.report_intake
        assert intake is not None
        raw = envelope.original_content or b""
        server.begin_commit()
        try:
            outcomes = await self._run(
                functools.partial(
                    intake.process, raw, tuple(envelope.reports), null_sender=envelope.sender_address == ""
                )
            )
        except Exception as exc:  # noqa: BLE001 — any failure is a temporary 451; the MTA retries
            # process() is one transaction: nothing is half-applied.  Class only in the log.
            self.count("internal_error")
            log.error(GatewayEvent.REPORT_FAILED, error=type(exc).__name__)
            return str(replies.S451_LOCAL_ERROR)
        for outcome in outcomes:
            self.reports[str(outcome)] += 1
        # Unmatched and unrecognised reports are accepted too: refusing them would only
        # make the remote MTA bounce its bounce.  Outcome tokens only, never addresses.
        log.info(
            GatewayEvent.REPORT_RECEIVED,
            outcomes=[str(o) for o in outcomes],
            size=len(raw),
            matched=any(o not in (ReportOutcome.UNMATCHED, ReportOutcome.UNRECOGNIZED) for o in outcomes),
        )
        # RFC 5321 §4.2.5: 250 only once what the report changed is committed.
        return str(S250_REPORT_RECEIVED)

    def _store(
        self, sender: _Sender, raw: bytes, mail_from: str, rcpts: tuple[Address, ...]
    ) -> dict[str, Any]:
        submission = submission_from_raw(
            raw,
            mail_from,
            rcpts,
            source="smtp",
            message_id_domain=self.services.settings.smtp_hostname,
            limits=self.limits,
            stream=sender.stream,
        )
        response, _replayed = self.services.messages.accept(sender.principal, submission)
        self._harvest(sender.principal.tenant_id, raw)
        return response

    def _harvest(self, tenant_id: str, raw: bytes) -> None:
        """Tenant opt-in (``harvest_keys``): keep the sender's Autocrypt / S/MIME certificates.

        Runs after the message is committed and never affects the reply.
        """
        try:
            settings = self.services.tenancy.get_tenant(tenant_id)["settings"] or {}
            if settings.get("harvest_keys"):
                harvest(self.services.keydir, tenant_id, raw)
        except Exception as exc:  # noqa: BLE001 — harvesting is best-effort by design
            log.warning("smtp.harvest_failed", error=type(exc).__name__)


class _Controller(Controller):
    """aiosmtpd's threaded controller, building our SMTP class and allowing port 0."""

    def __init__(self, handler: _Handler, host: str, port: int, smtp_factory: Callable[[], SMTP]) -> None:
        super().__init__(handler, hostname=host, port=port)
        self._smtp_factory = smtp_factory

    def factory(self) -> SMTP:
        return self._smtp_factory()

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self._bind()

    async def _bind(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port)
        # With port 0 the OS picks a port; record it so start() can connect to it and
        # callers can read it.  (With a name resolving to several addresses each socket
        # gets its own port; the first is reported.)
        sockets = server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return server


class SmtpGateway:
    """The SMTP submission listener; ``start`` and ``stop`` run it in its own thread."""

    def __init__(
        self,
        services: Services,
        *,
        host: str | None = None,
        port: int | None = None,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self.host = host if host is not None else settings.smtp_host
        self._requested_port = port if port is not None else settings.smtp_port
        self.tls_cert = tls_cert or settings.resolved_tls_cert
        self.tls_key = tls_key or settings.resolved_tls_key
        self._handler = _Handler(services)
        self._controller: _Controller | None = None
        # The inbound listener has its own handler: each listener runs its own event
        # loop, and the futures ``drain`` waits for belong to one loop.
        self._inbound_port = settings.smtp_inbound_port
        self._inbound_handler = _Handler(services, inbound=True)
        self._inbound: _Controller | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the real one when configured as 0)."""
        if self._controller is None:
            return self._requested_port
        return int(self._controller.port)

    @property
    def inbound_port(self) -> int | None:
        """The inbound listener's bound port once started; None when it is not configured."""
        if self._inbound is None:
            return self._inbound_port
        return int(self._inbound.port)

    @property
    def rejections(self) -> collections.Counter[str]:
        """Rejections so far by reason (a metric until a metrics registry exists)."""
        return self._handler.rejections

    @property
    def inbound_rejections(self) -> collections.Counter[str]:
        return self._inbound_handler.rejections

    @property
    def reports(self) -> collections.Counter[str]:
        """Inbound reports so far by outcome (bounced, complained, unmatched, …)."""
        return self._inbound_handler.reports

    def _make_smtp(self, context: ssl.SSLContext, handler: _Handler | None = None) -> SMTP:
        settings = self.services.settings
        handler = handler or self._handler
        return _GatewaySMTP(
            handler,
            hostname=settings.smtp_hostname,
            ident="Sealmail ESMTP",
            tls_context=context,
            # Enforced per command in check_auth_needed so connectors are covered and
            # the reply carries an enhanced status code.
            require_starttls=False,
            auth_required=not handler.inbound,
            auth_require_tls=True,
            # RFC 1870: SIZE is advertised with this limit and enforced at MAIL and DATA.
            data_size_limit=settings.smtp_max_message_bytes,
            # RFC 6531: SMTPUTF8 advertised; RFC 6152 8BITMIME is on while decode_data is off.
            enable_SMTPUTF8=True,
            decode_data=False,
        )

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("the SMTP gateway is already running")
        settings = self.services.settings
        # aiosmtpd logs every command line (MAIL FROM and RCPT TO addresses included) at
        # INFO on "mail.log"; addresses are identifiers that must not reach our logs.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        context = server_tls_context(self.tls_cert, self.tls_key, settings.smtp_connector_client_ca)
        controller = _Controller(
            self._handler, self.host, self._requested_port, lambda: self._make_smtp(context)
        )
        controller.start()
        self._controller = controller
        log.info(GatewayEvent.STARTED, host=self.host, port=self.port)
        if self._inbound_port is not None:
            inbound = _Controller(
                self._inbound_handler,
                self.host,
                self._inbound_port,
                lambda: self._make_smtp(context, self._inbound_handler),
            )
            try:
                inbound.start()
            except BaseException:
                self.stop()
                raise
            self._inbound = inbound
            log.info(GatewayEvent.STARTED, host=self.host, port=self.inbound_port, listener="inbound")

    def stop(self) -> None:
        """Stop listening, let running ``accept`` calls finish, then stop the loop."""
        if self._inbound is not None:
            self._stop(self._inbound, self._inbound_handler)
            self._inbound = None
        controller = self._controller
        if controller is None:
            return
        self._stop(controller, self._handler)
        self._controller = None
        log.info(GatewayEvent.STOPPED)

    @staticmethod
    def _stop(controller: _Controller, handler: _Handler) -> None:
        drained = asyncio.run_coroutine_threadsafe(handler.drain(controller.server), controller.loop)
        try:
            drained.result(DRAIN_SECONDS)
        except TimeoutError:
            drained.cancel()
            log.warning(GatewayEvent.DRAIN_TIMEOUT, seconds=DRAIN_SECONDS)
        controller.stop()
