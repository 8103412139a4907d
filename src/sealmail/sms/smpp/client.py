"""An asyncio SMPP 3.4 ESME: one bound transceiver session.

``bind_transceiver`` once (§4.1.5), then ``submit_sm`` for each text; requests and
responses are matched by sequence number, so several submits may be outstanding.  The
read loop answers the SMSC's ``deliver_sm`` (receipts and inbound texts, handed to
``on_deliver``) and ``enquire_link``; our own ``enquire_link`` runs every
``keepalive`` seconds (§4.11) and a link that stops answering is closed, so the next
send reconnects.  Every wait is bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sealmail.sms.smpp import pdu
from sealmail.sms.smpp.pdu import Command, Pdu, PduError, ShortMessage, Status

log = logging.getLogger(__name__)
OnDeliver = Callable[[ShortMessage], Awaitable[None]]


class SmppError(Exception):
    """The SMSC refused (``status``) or the link failed (``status`` None)."""

    def __init__(self, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.status = status


@dataclass(frozen=True, slots=True)
class SmppOptions:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    timeout: float = 10.0
    keepalive: float = 30.0


class SmppSession:
    def __init__(self, options: SmppOptions, on_deliver: OnDeliver) -> None:
        self.options = options
        self.on_deliver = on_deliver
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._sequence = 0
        self._reference = 0  # the concatenation reference of the last long text
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    @property
    def bound(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    def _next(self) -> int:
        # §3.2: sequence numbers run 0x00000001..0x7FFFFFFF.
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    async def open(self) -> None:
        o = self.options
        async with self._lock:
            if self.bound:
                return
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(o.host, o.port), o.timeout
            )
            self._tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._keepalive())]
            resp = await self._request(
                Command.BIND_TRANSCEIVER, pdu.bind_transceiver(o.system_id, o.password, o.system_type)
            )
            if resp.status != Status.OK:
                await self.close(unbind=False)
                raise SmppError(f"bind_transceiver refused ({resp.status:#x})", resp.status)

    async def submit(self, message: ShortMessage) -> list[str]:
        """Submit one text, segment by segment; the SMSC's message id of each segment.

        Segments go in order, each after the previous one's submit_sm_resp: a refusal
        part-way stops the rest (the handset shows nothing until every part arrives).
        """
        if not self.bound:
            await self.open()
        self._reference = (self._reference + 1) % 256
        ids = []
        for body in pdu.short_messages(message, self._reference):
            resp = await self._request(Command.SUBMIT_SM, body)
            if resp.status != Status.OK:
                raise SmppError(f"submit_sm refused ({resp.status:#x})", resp.status)
            ids.append(pdu.parse_message_id(resp.body))
        return ids

    async def close(self, *, unbind: bool = True) -> None:
        if unbind and self.bound:
            with contextlib.suppress(SmppError, OSError, TimeoutError):
                await self._request(Command.UNBIND, b"")
        for task in [*self._tasks, *self._handlers]:
            task.cancel()
        for task in [*self._tasks, *self._handlers]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._writer = self._reader = None
        self._fail_pending("the SMPP session closed")

    # -- plumbing ---------------------------------------------------------------------------
    async def _send(self, p: Pdu) -> None:
        if self._writer is None:
            raise SmppError("not connected")
        self._writer.write(pdu.encode(p))
        await self._writer.drain()

    async def _request(self, command: Command, body: bytes) -> Pdu:
        seq = self._next()
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._pending[seq] = future
        try:
            await self._send(Pdu(command, 0, seq, body))
            return await asyncio.wait_for(future, self.options.timeout)
        except TimeoutError as exc:
            raise SmppError(f"no answer to {command.name} within {self.options.timeout} s") from exc
        finally:
            self._pending.pop(seq, None)

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(SmppError(why))
        self._pending.clear()

    async def _read_one(self) -> Pdu:
        assert self._reader is not None
        head = await self._reader.readexactly(16)
        length = pdu.header_length(head)
        return pdu.decode(head + await self._reader.readexactly(length - 16))

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    p = await self._read_one()
                except PduError as exc:
                    log.warning("smpp.bad_pdu %s", exc)
                    await self._send(Pdu(Command.GENERIC_NACK, Status.INVALID_LENGTH, 0))
                    break
                await self._dispatch(p)
        except (asyncio.IncompleteReadError, OSError, SmppError):
            pass
        finally:
            if self._writer is not None:
                self._writer.close()
            self._fail_pending("the SMSC closed the link")

    async def _dispatch(self, p: Pdu) -> None:
        if p.command & 0x80000000:
            future = self._pending.get(p.sequence)
            if future is not None and not future.done():
                future.set_result(p)
            return
        if p.command is Command.ENQUIRE_LINK:
            await self._send(Pdu(Command.ENQUIRE_LINK_RESP, Status.OK, p.sequence))
        elif p.command is Command.UNBIND:
            await self._send(Pdu(Command.UNBIND_RESP, Status.OK, p.sequence))
            raise SmppError("the SMSC unbound")
        elif p.command is Command.DELIVER_SM:
            message = pdu.parse_short_message(p.body)
            # Acknowledged before it is handled: the SMSC must not resend while we work.
            await self._send(Pdu(Command.DELIVER_SM_RESP, Status.OK, p.sequence, b"\x00"))
            # Handled beside the read loop: a handler that submits (a STOP confirmation)
            # needs this loop to read its submit_sm_resp.
            task = asyncio.create_task(self._handle(message))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        else:
            await self._send(Pdu(Command.GENERIC_NACK, Status.INVALID_COMMAND, p.sequence))

    async def _handle(self, message: ShortMessage) -> None:
        try:
            await self.on_deliver(message)
        except Exception:
            log.exception("smpp.deliver_handler_failed")

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.options.keepalive)
            try:
                await self._request(Command.ENQUIRE_LINK, b"")
            except SmppError:
                log.warning("smpp.link_dead")
                if self._writer is not None:
                    self._writer.close()
                return
