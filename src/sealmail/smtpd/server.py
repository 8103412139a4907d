"""One aiosmtpd listener: its thread and loop, its replies, and a stop that drains.

aiosmtpd runs the protocol in its own thread and event loop.  Everything that blocks
(argon2 verification, database reads, ``accept``) runs in that loop's executor so one
slow client never stalls the other connections.  Logs carry identifiers only, never
addresses, subjects or content.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import enum
import functools
import ipaddress
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, Envelope, TLSSetupException

from sealmail.domain import smtp_replies as replies
from sealmail.domain.addresses import Address, InvalidAddress, parse_address
from sealmail.domain.smtp_replies import Reply
from sealmail.net.event_loop import DEFAULT_EVENT_LOOP, loop_factory
from sealmail.smtpd.connection_gate import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_PER_CLIENT,
    Admission,
    ConnectionGate,
    IpNetwork,
    Refusal,
)
from sealmail.smtpd.data import DataVerdict, read_data
from sealmail.smtpd.paths import simple_path
from sealmail.smtpd.starttls import LoopTlsSMTP
from sealmail.smtpd.wire import WireSMTP

__all__ = [
    "DRAIN_SECONDS",
    "NULL_SENDER",
    "ListenerEvent",
    "ListenerHandler",
    "ListenerOptions",
    "ListenerSMTP",
    "RequireTlsSMTP",
    "SmtpListener",
    "TransactionEnvelope",
    "address_refusal",
    "offer_requiretls",
    "one_line",
    "peer_ip",
    "server_tls_context",
]

log = structlog.get_logger("sealmail.smtp")

T = TypeVar("T")

# How long ``stop`` waits for messages whose ``accept`` is already running.
DRAIN_SECONDS: Final = 30.0
# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets including code and CRLF.
_MAX_REASON_CHARS: Final = 400
# aiosmtpd's RFC 5321 §3.3 null reverse-path, as its address parser returns it.
NULL_SENDER: Final = "<>"


class ListenerEvent(enum.StrEnum):
    """Log event names every listener writes."""

    STARTED = "smtp.started"
    STOPPED = "smtp.stopped"
    DRAIN_TIMEOUT = "smtp.drain_timeout"
    REJECTED = "smtp.rejected"
    COMMAND_FAILED = "smtp.command_failed"
    TLS_FAILED = "smtp.tls_failed"


def one_line(text: str) -> str:
    """A reason made safe for a reply line: printable ASCII, one line, bounded length."""
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    return cleaned[:_MAX_REASON_CHARS]


def address_refusal(reply: Reply, exc: InvalidAddress) -> Reply:
    """``reply`` saying what is really wrong with the address, never the address itself.

    A well-formed address can still be unusable, e.g. on a special-use domain such as
    ``.test`` (RFC 6761 §6.2); "bad syntax" alone would send the user hunting for a typo.
    """
    return reply.with_text(one_line(f"{reply.text}: {exc.reason}"))


def peer_ip(peer: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
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
    a connector.  Only ``client_ca`` is trusted for client certificates.  Unreadable files
    raise ``OSError`` or ``ssl.SSLError``; the composition root names the settings.
    """
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
    return context


class TransactionEnvelope(Envelope):
    """aiosmtpd's envelope plus the validated addresses of this transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.sender_address: str = ""  # normalised addr-spec; "" for the null sender
        self.recipients: list[Address] = []
        self.requiretls = False  # RFC 8689: MAIL FROM carried REQUIRETLS


class ListenerHandler:
    """What every listener's aiosmtpd handler does: count, reject, run blocking work, drain."""

    def __init__(self) -> None:
        self.rejections: collections.Counter[str] = collections.Counter()
        self.inflight: set[asyncio.Future[Any]] = set()

    def count(self, reason: str) -> None:
        self.rejections[reason] += 1

    def reject(self, reply: Reply, reason: str, tenant_id: str | None = None) -> str:
        self.count(reason)
        log.info(ListenerEvent.REJECTED, reason=reason, code=reply.code, tenant_id=tenant_id)
        return str(reply)

    def sender_syntax(
        self, envelope: TransactionEnvelope, address: str, tenant_id: str | None
    ) -> Address | str:
        """The parsed reverse-path, or the reply refusing it."""
        try:
            parsed = parse_address(address, "mail_from")
        except InvalidAddress as exc:
            return self.reject(
                address_refusal(replies.S553_BAD_SENDER_ADDRESS, exc), "bad_sender_syntax", tenant_id
            )
        if parsed.needs_smtputf8 and not envelope.smtp_utf8:
            # RFC 6531 §3.4: a UTF-8 address needs the SMTPUTF8 MAIL parameter.
            return self.reject(replies.S553_NON_ASCII_ADDRESS, "utf8_without_smtputf8", tenant_id)
        return parsed

    def recipient_syntax(self, address: str, tenant_id: str | None) -> Address | str:
        """The parsed forward-path, or the reply refusing it."""
        try:
            return parse_address(address, "rcpt_to")
        except InvalidAddress as exc:
            return self.reject(
                address_refusal(replies.S553_BAD_ADDRESS, exc), "bad_recipient_syntax", tenant_id
            )

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run blocking work in the executor, tracked so ``stop`` can wait for it.

        The work is shielded: if the client disconnects mid-way, a started ``accept``
        still commits or rolls back as a whole rather than being abandoned.
        """
        # ``asyncio.to_thread`` without its coroutine: wrapped in a Task, that cost a Task
        # and two more loop steps per message.  The context still travels with the call.
        call = functools.partial(contextvars.copy_context().run, func, *args)
        future: asyncio.Future[T] = asyncio.get_running_loop().run_in_executor(None, call)
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

    async def handle_exception(self, error: Exception) -> str:
        """Any exception a command raised: 451, logged by class only.

        aiosmtpd's default would log the traceback and send ``500 Error: (Class) message``
        to the client, and either could carry an address from the failing command.
        """
        if isinstance(error, TLSSetupException):
            # A failed handshake (also: a client certificate not from the connector CA).
            self.count("tls_failed")
            log.info(ListenerEvent.TLS_FAILED, error=type(error.__cause__).__name__)
        else:
            self.count("internal_error")
            log.error(ListenerEvent.COMMAND_FAILED, error=type(error).__name__)
        return str(replies.S451_LOCAL_ERROR)


class RequireTlsSMTP(SMTP):
    """aiosmtpd's SMTP knowing the REQUIRETLS MAIL parameter (RFC 8689 §3) over TLS.

    aiosmtpd answers 555 to every parameter it does not implement.  REQUIRETLS is known only
    on MAIL and only on a TLS session (where ``offer_requiretls`` advertises it); it stays in
    ``mail_options`` for the handler.  A value ("REQUIRETLS=x") remains a 555.
    """

    _parsing_mail = False

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._parsing_mail = True
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._parsing_mail = False

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        known = self._parsing_mail and self._tls_protocol is not None
        return super()._getparams([p for p in params if not (known and p.upper() == "REQUIRETLS")])


def offer_requiretls(session: Any, hostname: str, responses: list[str]) -> list[str]:
    """An aiosmtpd ``handle_EHLO`` body: REQUIRETLS only on a TLS session (RFC 8689 §3; Exim
    does the same), so a client may ask for it only over a connection that already meets it."""
    session.host_name = hostname  # aiosmtpd leaves this to a handler with the hook
    if session.ssl is not None:
        responses.insert(len(responses) - 1, "250-REQUIRETLS")
    return responses


class ListenerSMTP(LoopTlsSMTP, WireSMTP):
    """One connection's protocol state: catalogue replies, STARTTLS through the loop's
    ``start_tls`` and a DATA ``stop`` waits for."""

    # How much of a DATA section is held (smtpd/data.py ``keep``); None: all of it.
    data_keep_limit: int | None = None

    def __init__(self, handler: ListenerHandler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.listener_handler = handler
        self.commit: asyncio.Future[None] | None = None
        # The listener's caps (smtpd/connection_gate.py); ``make_smtp`` sets the gate.
        self.gate: ConnectionGate | None = None
        self.admission: Admission | Refusal | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called once per connection: STARTTLS re-enters through ``_secured``, not here.
        if self.gate is not None:
            self.admission = self.gate.admit(peer_ip(transport.get_extra_info("peername")))
        super().connection_made(transport)

    async def _handle_client(self) -> None:
        if isinstance(self.admission, Refusal):
            await self._refuse_connection(self.admission)
            return
        await super()._handle_client()

    async def _refuse_connection(self, refusal: Refusal) -> None:
        """421 instead of the greeting (RFC 5321 §3.1), then close: no command is read."""
        mine = refusal is Refusal.CLIENT_FULL
        reply = replies.S421_TOO_MANY_FROM_CLIENT if mine else replies.S421_TOO_MANY_CONNECTIONS
        self.listener_handler.count(refusal.value)
        await self.push(f"{reply.code} {reply.enhanced} {self.hostname} {reply.text}")
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self.gate is not None and isinstance(self.admission, Admission):
            self.gate.release(self.admission)
        super().connection_lost(error)

    def _create_envelope(self) -> Envelope:
        return TransactionEnvelope()

    @property
    def tls_active(self) -> bool:
        return self._tls_protocol is not None

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # The common plain path without the header parser (smtpd/paths.py says why).
        simple = simple_path(arg, self.local_part_limit)
        return simple if simple is not None else super()._getaddr(arg)

    async def smtp_DATA(self, arg: str) -> None:
        try:
            if self._decode_data:
                await super().smtp_DATA(arg)
            else:
                await self._bulk_data(arg)
        finally:
            # The final reply has been written (or the client is gone): ``stop`` no
            # longer needs to wait for this transaction.
            if self.commit is not None:
                if not self.commit.done():
                    self.commit.set_result(None)
                self.commit = None

    async def _bulk_data(self, arg: str) -> None:
        """aiosmtpd's ``smtp_DATA`` with the section read in bulk (smtpd/data.py says why);
        the checks before and the replies after are aiosmtpd's."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            section = await read_data(
                self._reader, self.data_size_limit, self.line_length_limit, self.data_keep_limit
            )
        except asyncio.CancelledError:
            # The connection went away during DATA (aiosmtpd cancels on EOF).
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:
            self._writer.close()
            return
        if section.verdict is DataVerdict.TOO_LONG:
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)")
        elif section.verdict is DataVerdict.TOO_MUCH:
            await self.push("552 Error: Too much mail data")
        if section.verdict is not DataVerdict.COMPLETE:
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd is untyped
            return
        self.envelope.content = self.envelope.original_content = section.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd is untyped
        await self.push("250 OK" if status is MISSING else status)

    def begin_commit(self) -> None:
        """Mark that the message is complete and being stored; ``stop`` waits for it."""
        self.commit = self.loop.create_future()
        self.listener_handler.track(self.commit)


class _Controller(Controller):
    """aiosmtpd's threaded controller, building our SMTP class and allowing port 0."""

    def __init__(
        self,
        handler: ListenerHandler,
        listen: ListenerOptions,
        port: int,
        smtp_factory: Callable[[], SMTP],
    ) -> None:
        super().__init__(handler, hostname=listen.host, port=port, loop=loop_factory(listen.event_loop)())
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


@dataclass(frozen=True, slots=True)
class ListenerOptions:
    """Where a listener binds and what it advertises."""

    host: str
    port: int
    hostname: str  # our EHLO name
    # RFC 1870: SIZE is advertised with this limit and enforced at MAIL and DATA.
    max_message_bytes: int
    # The listener thread's loop (net/event_loop.py; SEALMAIL_EVENT_LOOP).
    event_loop: str = DEFAULT_EVENT_LOOP
    # Connections held at once, in all and per client address (smtpd/connection_gate.py);
    # ``connection_exempt`` networks are not capped per client.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_client: int = DEFAULT_MAX_PER_CLIENT
    connection_exempt: tuple[IpNetwork, ...] = ()


class SmtpListener:
    """One listener's lifecycle; ``start`` and ``stop`` run it in its own thread.

    Each listener has its own handler: each runs its own event loop, and the futures
    ``drain`` waits for belong to one loop.
    """

    name = "submission"
    protocol: type[ListenerSMTP] = ListenerSMTP
    auth_required = False

    def __init__(self, handler: ListenerHandler, options: ListenerOptions, tls: ssl.SSLContext) -> None:
        self.handler = handler
        self.host = options.host
        self.listen = options
        self.tls = tls
        self._requested_port = options.port
        self._controller: _Controller | None = None
        self.gate = ConnectionGate(
            options.max_connections, options.max_connections_per_client, options.connection_exempt
        )

    @property
    def port(self) -> int:
        """The bound port once started (the real one when configured as 0)."""
        if self._controller is None:
            return self._requested_port
        return int(self._controller.port)

    @property
    def rejections(self) -> collections.Counter[str]:
        """Rejections so far by reason (a metric until a metrics registry exists)."""
        return self.handler.rejections

    def make_smtp(self) -> SMTP:
        smtp = self.protocol(
            self.handler,
            hostname=self.listen.hostname,
            ident="Sealmail ESMTP",
            tls_context=self.tls,
            # STARTTLS is enforced per command in check_auth_needed, so connectors are
            # covered and the reply carries an enhanced status code.
            require_starttls=False,
            auth_required=self.auth_required,
            auth_require_tls=True,
            data_size_limit=self.listen.max_message_bytes,
            # RFC 6531: SMTPUTF8 advertised; RFC 6152 8BITMIME is on while decode_data is off.
            enable_SMTPUTF8=True,
            decode_data=False,
        )
        smtp.gate = self.gate
        return smtp

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError(f"the SMTP {self.name} listener is already running")
        # aiosmtpd logs every command line (MAIL FROM and RCPT TO addresses included) at
        # INFO on "mail.log"; addresses are identifiers that must not reach our logs.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        controller = _Controller(self.handler, self.listen, self._requested_port, self.make_smtp)
        controller.start()
        self._controller = controller
        log.info(ListenerEvent.STARTED, host=self.host, port=self.port, listener=self.name)

    def stop(self) -> None:
        """Stop listening, let running transactions finish, then stop the loop."""
        controller = self._controller
        if controller is None:
            return
        drained = asyncio.run_coroutine_threadsafe(self.handler.drain(controller.server), controller.loop)
        try:
            drained.result(DRAIN_SECONDS)
        except TimeoutError:
            drained.cancel()
            log.warning(ListenerEvent.DRAIN_TIMEOUT, seconds=DRAIN_SECONDS)
        controller.stop()
        self._controller = None
        log.info(ListenerEvent.STOPPED, listener=self.name)
