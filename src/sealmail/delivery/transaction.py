"""One SMTP mail transaction on an open connection: MAIL, RCPT, DATA (RFC 5321 §3.3).

Reply classification here is coarse (2xx delivered, 4xx deferred, 5xx failed);
``domain/retry.py`` refines the reasons.  PIPELINING (RFC 2920) is used when the server
offers it, through a reader of our own: aiosmtplib 5.x reads exactly one reply per
command and drops replies that arrive back to back.  Nothing here logs addresses or
content.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

import aiosmtplib
from aiosmtplib import SMTPResponse

from sealmail.delivery.routes import HopError, Where
from sealmail.domain.numerals import whole_number
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.domain.wire import canonical_message
from sealmail.net.dns import to_ascii_domain

# RFC 3463 §2: class.subject.detail at the start of the reply text.  ASCII digits: \d would
# take a hostile server's "5.٣.١" (Arabic-Indic), which then broke the DSN's ASCII Status.
_ENHANCED_RE = re.compile(r"^([245]\.[0-9]{1,3}\.[0-9]{1,3})(?=\s|$)")

PoolKey = tuple[str, str, int, TlsPolicy, str]


@dataclass(eq=False)
class Session:
    """An open, greeted (and, where offered, encrypted) connection to one host."""

    smtp: aiosmtplib.SMTP
    key: PoolKey
    where: Where
    last_used: float = field(default_factory=time.monotonic)
    messages: int = 0


@dataclass(slots=True)
class _Envelope:
    """The commands of one transaction and what the message needs of the server."""

    mail: bytes
    rcpts: list[bytes]
    options: list[bytes]
    payload: bytes


@dataclass(slots=True)
class _Progress:
    """Per-recipient results so far, and whether the end of data went out."""

    results: dict[int, Attempt] = field(default_factory=dict)
    accepted: list[int] = field(default_factory=list)
    data_sent: bool = False


async def transact(
    session: Session,
    where: Where,
    mail_from: str,
    recipients: list[str],
    message: bytes,
    data_timeout: float,
    *,
    requiretls: bool = False,
) -> list[Attempt]:
    """Send ``message`` to ``recipients``; one attempt per recipient, in order.

    ``requiretls`` passes the RFC 8689 MAIL parameter on (the caller checked the server
    offers it).  Raises ``HopError`` only when the connection was lost before the data
    went out, so the caller may try another connection without risking a duplicate.
    """
    smtp = session.smtp
    envelope = _envelope(smtp, where, mail_from, recipients, message)
    if isinstance(envelope, list):
        return envelope
    if requiretls:
        envelope.options.append(b"REQUIRETLS")
    progress = _Progress()
    try:
        if smtp.supports_extension("pipelining") and _can_pipeline(smtp.protocol):
            reply = await _commands_pipelined(smtp, envelope, recipients, where, progress, data_timeout)
        else:
            reply = await _commands_lockstep(smtp, envelope, recipients, where, progress, data_timeout)
        if reply is None:
            return [progress.results[i] for i in range(len(recipients))]
        if progress.accepted:
            await _data(session, reply, envelope.payload, recipients, where, progress, data_timeout)
        else:
            await rset_quietly(smtp)
    except (
        aiosmtplib.SMTPServerDisconnected,
        aiosmtplib.SMTPTimeoutError,
        # A reply aiosmtplib cannot parse (no code, a line past 8 KiB, a reply past 32 KiB):
        # the conversation is out of step, so the connection is as good as lost.
        aiosmtplib.SMTPResponseException,
        OSError,
    ) as exc:
        abort(smtp)
        _lost(exc, recipients, where, progress)
    return [progress.results[i] for i in range(len(recipients))]


def _envelope(
    smtp: aiosmtplib.SMTP, where: Where, mail_from: str, recipients: list[str], message: bytes
) -> _Envelope | list[Attempt]:
    """The commands to send, or the attempts refusing a server that cannot take the message."""
    options: list[bytes] = []
    encoding = "ascii"
    envelope = [_ascii_domain_address(r) for r in recipients]
    sender = _ascii_domain_address(mail_from) if mail_from else ""
    if not (sender.isascii() and all(r.isascii() for r in envelope) and _headers_ascii(message)):
        if not smtp.supports_extension("smtputf8"):
            # RFC 6531 §3.2: without SMTPUTF8 the message cannot be sent to this server.
            return _all(recipients, where, "smtputf8_unsupported", f"{where.mx_host} lacks SMTPUTF8")
        options.append(b"SMTPUTF8")
        encoding = "utf-8"
    if not message.isascii():
        if not smtp.supports_extension("8bitmime"):
            # RFC 6152 §3: 8-bit data only to servers that advertise 8BITMIME.
            return _all(recipients, where, "8bitmime_unsupported", f"{where.mx_host} lacks 8BITMIME")
        options.append(b"BODY=8BITMIME")
    payload = _dot_stuff(message)
    if smtp.supports_extension("size"):
        limit = smtp.esmtp_extensions.get("size", "")
        # A server's EHLO text is the outside world's (domain/numerals.py): "²" or "٣" is no
        # limit, and past 18 digits no message is larger, so no limit either way.
        size = whole_number(limit)
        if size and size < len(payload):
            # RFC 1870 §6: do not send what the server already said it will refuse.
            return _all(
                recipients, where, "message_too_large", f"{where.mx_host} takes at most {limit} bytes"
            )
        options.append(f"SIZE={len(payload)}".encode())
    return _Envelope(
        b"FROM:<" + sender.encode(encoding) + b">",
        [b"TO:<" + rcpt.encode(encoding) + b">" for rcpt in envelope],
        options,
        payload,
    )


async def _commands_pipelined(
    smtp: aiosmtplib.SMTP,
    envelope: _Envelope,
    recipients: list[str],
    where: Where,
    progress: _Progress,
    data_timeout: float,
) -> SMTPResponse | None:
    """MAIL, every RCPT and DATA in one write; the reply to DATA, or None when MAIL failed."""
    # RFC 2920 §3.1: the replies are then read in order.  One round trip instead of
    # 2 + recipients.
    mail_cmd = b"MAIL " + envelope.mail + b"".join(b" " + o for o in envelope.options)
    commands = [mail_cmd, *(b"RCPT " + r for r in envelope.rcpts), b"DATA"]
    replies = await _pipelined(smtp, commands, data_timeout)
    mail_reply, rcpt_replies, reply = replies[0], replies[1:-1], replies[-1]
    if mail_reply.code != 250:
        await rset_quietly(smtp)
        progress.results.update({i: _from_reply(r, mail_reply, where) for i, r in enumerate(recipients)})
        return None
    for index, rcpt_reply in enumerate(rcpt_replies):
        if rcpt_reply.code in (250, 251):
            progress.accepted.append(index)
        else:
            progress.results[index] = _from_reply(recipients[index], rcpt_reply, where)
    if not progress.accepted and reply.code == 354:
        # RFC 2920 §3.1: DATA was accepted although no recipient was; end the
        # empty transaction with a lone "." and reset.
        smtp.protocol.write(b".\r\n")  # type: ignore[union-attr]  # checked by _can_pipeline
        await smtp.protocol.read_response(timeout=data_timeout)  # type: ignore[union-attr]  # same
    return reply


async def _commands_lockstep(
    smtp: aiosmtplib.SMTP,
    envelope: _Envelope,
    recipients: list[str],
    where: Where,
    progress: _Progress,
    reply_timeout: float,
) -> SMTPResponse | None:
    """MAIL, RCPT and DATA one at a time; the last reply, or None when MAIL failed."""
    lean = _can_pipeline(smtp.protocol)
    mail_cmd = b" ".join((b"MAIL", envelope.mail, *envelope.options))
    reply = await _command(smtp, mail_cmd, reply_timeout, lean)
    if reply.code != 250:
        await rset_quietly(smtp)
        progress.results.update({i: _from_reply(r, reply, where) for i, r in enumerate(recipients)})
        return None
    for index, rcpt in enumerate(envelope.rcpts):
        reply = await _command(smtp, b"RCPT " + rcpt, reply_timeout, lean)
        if reply.code in (250, 251):
            progress.accepted.append(index)
        else:
            progress.results[index] = _from_reply(recipients[index], reply, where)
    if progress.accepted:
        reply = await _command(smtp, b"DATA", reply_timeout, lean)
    return reply


async def _command(smtp: aiosmtplib.SMTP, command: bytes, reply_timeout: float, lean: bool) -> SMTPResponse:
    """Write one command and read its reply (lockstep, for servers without PIPELINING).

    ``lean`` (aiosmtplib 5.x's protocol internals are there, ``_can_pipeline``): what
    ``SMTP.execute_command`` does on this path, without a control-character regex over every
    argument (the addresses were refused by ``smtp_client`` if they held any, the rest are our
    constants; CR and LF are still refused here), without an ``asyncio.Lock`` (the pool lends a
    session to one transaction at a time) and with a timer handle instead of
    ``asyncio.wait_for``'s extra future and callback hop: 24 → 19 µs a command on loopback.
    As there, a 421 closes the connection (RFC 5321 §3.8: the server is closing the channel).
    """
    if not lean:
        return await smtp.execute_command(command, timeout=reply_timeout)
    if b"\r" in command or b"\n" in command:
        raise ValueError("SMTP command holds a line break")
    protocol: Any = smtp.protocol
    # Marked before the write, as aiosmtplib does: a reply arriving at once is kept.
    protocol._response_pending = True
    protocol.write(command + b"\r\n")
    reply = await _reply(protocol, reply_timeout)
    if reply.code == 421:
        smtp.close()
    return reply


async def _reply(protocol: Any, reply_timeout: float) -> SMTPResponse:
    """The next reply aiosmtplib's protocol parses into its response waiter (as its
    ``read_response``); ``SMTPReadTimeoutError`` after ``reply_timeout`` seconds."""
    waiter = protocol._response_waiter
    if waiter is None:
        raise aiosmtplib.SMTPServerDisconnected("Connection lost")
    protocol._response_pending = True
    timer = protocol._loop.call_later(reply_timeout, _expire, waiter)
    try:
        reply: SMTPResponse = await waiter
    finally:
        timer.cancel()
        protocol._response_pending = False
        # A new waiter for the next reply; none once the connection is gone.
        protocol._response_waiter = None if protocol.transport is None else protocol._loop.create_future()
    return reply


def _expire(waiter: asyncio.Future[SMTPResponse]) -> None:
    # An exception on the waiter, not a cancellation: the awaiting task tells a timeout from
    # being cancelled itself, and a reply arriving later is dropped (the waiter is done).
    if not waiter.done():
        waiter.set_exception(aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"))


async def _data(
    session: Session,
    reply: SMTPResponse,
    payload: bytes,
    recipients: list[str],
    where: Where,
    progress: _Progress,
    data_timeout: float,
) -> None:
    """Send the message after a 354 and record the final reply for every accepted recipient."""
    smtp = session.smtp
    if reply.code == 354 and smtp.protocol is not None:
        progress.data_sent = True
        smtp.protocol.write(payload)
        if _can_pipeline(smtp.protocol):
            reply = await _reply(smtp.protocol, data_timeout)
        else:
            reply = await smtp.protocol.read_response(timeout=data_timeout)
        session.messages += 1
    for index in progress.accepted:
        progress.results[index] = _from_reply(recipients[index], reply, where)
    if reply.code != 250:
        await rset_quietly(smtp)


def _lost(exc: BaseException, recipients: list[str], where: Where, progress: _Progress) -> None:
    """The connection went away (or the server stopped speaking SMTP) mid-transaction."""
    if not progress.data_sent:
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            detail = f"{where.mx_host} sent a malformed reply; connection dropped"
        else:
            detail = f"connection to {where.mx_host} lost: {type(exc).__name__}"
        raise HopError("connection_failed", detail, where) from exc
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
    for index in progress.accepted:
        progress.results[index] = replace(lost, recipient=recipients[index])


def _can_pipeline(protocol: Any) -> bool:
    """aiosmtplib has no pipelining API; the reader below relies on these internals (5.x)."""
    if protocol is None or not isinstance(getattr(protocol, "_buffer", None), bytearray):
        return False
    # Set by the class's ``__init__`` (or defined on it): asked once per protocol class, as
    # this runs two or three times a transaction.
    known = _INTERNALS.get(type(protocol))
    if known is None:
        names = ("_response_waiter", "_read_response_from_buffer", "_loop")
        known = _INTERNALS[type(protocol)] = all(hasattr(protocol, name) for name in names)
    return known


_INTERNALS: dict[type, bool] = {}
# What aiosmtplib's own reader allows one reply (its MAX_RESPONSE_LENGTH, 4 lines of 8 KiB):
# the pipelined reader below holds replies to the same bound.
_MAX_REPLY_BYTES = 32 * 1024


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
    loop = asyncio.get_running_loop()
    try:
        protocol.write(b"".join(c + b"\r\n" for c in commands))
        replies: list[SMTPResponse] = []
        # Each reply must be complete within ``reply_timeout`` of the one before (as in
        # lockstep, where each has ``reply_timeout`` from its command): a server trickling
        # a byte at a time must not stretch one reply forever by keeping each read short.
        deadline = loop.time() + reply_timeout
        while len(replies) < len(commands):
            before = len(protocol._buffer)
            reply = protocol._read_response_from_buffer()
            if reply is not None:
                if before - len(protocol._buffer) > _MAX_REPLY_BYTES:
                    raise aiosmtplib.SMTPResponseException(-1, "Response too long")
                replies.append(reply)
                deadline = loop.time() + reply_timeout
                continue
            await _more_bytes(protocol, arrived, deadline - loop.time())
        return replies
    finally:
        del protocol.data_received
        protocol._response_pending = False


async def _more_bytes(protocol: Any, arrived: asyncio.Event, reply_timeout: float) -> None:
    """Wait until more of a pipelined reply arrived; raise when the connection ended."""
    if len(protocol._buffer) > _MAX_REPLY_BYTES:
        raise aiosmtplib.SMTPResponseException(-1, "Response too long")
    waiter = protocol._response_waiter
    if waiter is None:
        raise aiosmtplib.SMTPServerDisconnected("connection lost")
    if reply_timeout <= 0:
        raise aiosmtplib.SMTPReadTimeoutError("timed out waiting for a pipelined reply")
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


def _from_reply(recipient: str, reply: SMTPResponse, where: Where) -> Attempt:
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


def _all(recipients: list[str], where: Where, reason: str, detail: str) -> list[Attempt]:
    """Every recipient failed for the same reason before any command went out."""
    return [
        Attempt(
            r, AttemptStatus.FAILED, reason, detail, mx_host=where.mx_host, mx_ip=where.mx_ip, tls=where.tls
        )
        for r in recipients
    ]


async def rset_quietly(smtp: aiosmtplib.SMTP) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        abort(smtp)


def abort(smtp: aiosmtplib.SMTP) -> None:
    """Drop the connection now.

    A plain close() on a TLS transport waits for the peer's close_notify, which can
    outlive the event loop and leak the socket; once QUIT was answered, or the
    session is being abandoned, there is nothing left to protect.
    """
    transport = smtp.transport
    if isinstance(transport, asyncio.WriteTransport):
        transport.abort()
    smtp.close()


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
    end = message.find(b"\r\n\r\n")
    if end < 0:
        end = len(message)
    # The first blank line, either way it is written: a bare-LF one before the CRLF one
    # wins, and the search for it stops there instead of scanning the whole body.
    lf = message.find(b"\n\n", 0, end)
    return message[: lf if lf >= 0 else end].isascii()


def _dot_stuff(message: bytes) -> bytes:
    """Canonical, leading dots doubled, terminated by CRLF.CRLF (RFC 5321 §4.5.2).

    ``canonical_message`` runs again here (no scan when DKIM signing just made the message
    canonical: ``wire.Canonical``) so no NUL and no bare CR or LF reaches the wire whichever
    path built the payload.
    """
    body: bytes = canonical_message(message)
    # Every line but the first starts right after a CRLF: one C-level replace doubles their
    # leading dots (a line-by-line split and join was 4 % of the worker's CPU).
    if body.startswith(b"."):
        body = b"." + body
    return body.replace(b"\r\n.", b"\r\n..") + b".\r\n"
