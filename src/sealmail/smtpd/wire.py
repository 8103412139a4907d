"""What a connection writes and when: aiosmtpd's replies in the catalogue's words, a pipelined
group's replies in one write (RFC 2920), no ``drain`` while the transport takes more, and an
idle timer moved rather than replaced on every command.

aiosmtpd writes and drains each reply on its own (one TLS record and one ``send`` each) and
cancels and schedules a timer per command; at a few hundred messages a second those were a
visible part of the gateway's CPU.
"""

from __future__ import annotations

from typing import Any, AnyStr, Final

from aiosmtpd.smtp import SMTP

from sealmail.domain import smtp_replies as replies
from sealmail.domain.smtp_replies import Reply

__all__ = ["WireSMTP"]

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

# aiosmtpd's reply to an unknown verb: ``500 Error: command "<verb as sent>" not recognized``.
_UNRECOGNIZED_PREFIX: Final = '500 Error: command "'

# Replies never held for the next one's write (``WireSMTP._may_hold``): 220 precedes the
# TLS handshake, 221 the close.
_NEVER_HELD: Final = (b"220", b"221")
# At most this many replies wait for one write.
_MAX_HELD: Final = 32


class WireSMTP(SMTP):
    """aiosmtpd's SMTP with the writes and the idle timer described above."""

    # RFC 2920 PIPELINING advertised in EHLO (needs a handler with ``handle_EHLO``).
    pipelining = False

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._held: list[bytes] = []  # replies waiting to go out with the next one (``push``)
        # The idle timeout (``_reset_timeout``): when it falls due, and whether its timer is live.
        self._deadline = 0.0
        self._timer_armed = False

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd's ``push`` without a ``drain`` while the transport takes more.

        ``drain`` only waits while the transport has paused writing (its buffer above the
        high-water mark) or is closing; otherwise it is a coroutine and three checks per reply.
        """
        if isinstance(status, str):
            # aiosmtpd's built-in replies carry no enhanced status code; use the catalogue's.
            stock = _STOCK_REPLIES.get(status)
            if stock is None and status.startswith(_UNRECOGNIZED_PREFIX):
                # aiosmtpd quotes the unknown verb back as sent: a client's CR, ESC or NUL
                # then went out inside our reply line.  The catalogue's reply quotes nothing.
                stock = replies.S500_UNRECOGNIZED_COMMAND
            text = str(stock) if stock is not None else status
            response = text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") + b"\r\n"
        else:
            response = status + b"\r\n"
        held = self._held
        if self._may_hold(response):
            held.append(response)
            return
        if held:
            held.append(response)
            response = b"".join(held)
            held.clear()
        writer = self._writer
        writer.write(response)
        # FlowControlMixin's flag, set while the transport has paused writing.
        if self._paused or writer.transport.is_closing():  # type: ignore[attr-defined]
            await writer.drain()

    def _may_hold(self, response: bytes) -> bool:
        """Whether ``response`` may wait for the next reply's write (RFC 2920 §3.2: the replies
        to pipelined commands may go out together).

        Only while the client's next command line is already read, so nothing waits on the
        network behind a held reply; only 2xx replies a command line follows (not 220, which
        precedes the greeting's wait or the TLS handshake, nor 221 before the close); replies
        that precede a close, 354 and 334 are never held.  Bounded, for a client that sends
        faster than it reads.
        """
        return (
            response[0] == 0x32  # "2"
            and response[:3] not in _NEVER_HELD
            and len(self._held) < _MAX_HELD
            and b"\n" in self._reader._buffer  # type: ignore[attr-defined]  # aiosmtpd reads it too
        )

    def eof_received(self) -> bool | None:
        # aiosmtpd cancels the command loop at EOF; what the client already sent is answered.
        self._write_held()
        return super().eof_received()

    def _write_held(self) -> None:
        if self._held:
            self._writer.write(b"".join(self._held))
            self._held.clear()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if command == "EHLO" and self.pipelining and len(args) == 2:
            # aiosmtpd's EHLO lines so far, "250 HELP" last; RFC 2920 §2.
            args[1].insert(len(args[1]) - 1, "250-PIPELINING")
        return await super()._call_handler_hook(command, *args)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Move the idle deadline; the timer is re-armed only when it fires early.

        aiosmtpd cancels and schedules a timer on every command (a heap push each time).
        Here one timer runs; when it fires before the deadline it waits for the rest.
        """
        deadline = self.loop.time() + (duration or self._timeout_duration)
        self._deadline = deadline
        handle = self._timeout_handle
        if handle is not None and self._timer_armed and not handle.cancelled() and handle.when() <= deadline:
            return
        if handle is not None:
            handle.cancel()
        self._arm_timer()

    def _arm_timer(self) -> None:
        self._timer_armed = True
        self._timeout_handle = self.loop.call_at(self._deadline, self._timer_due)

    def _timer_due(self) -> None:
        if self.loop.time() < self._deadline:
            self._arm_timer()
            return
        self._timer_armed = False
        self._timeout_cb()  # type: ignore[no-untyped-call]  # aiosmtpd is untyped
