"""A tiny SMSC on loopback speaking SMPP 3.4, written apart from Sealmail's codec.

It packs and unpacks PDUs with ``struct`` straight from the specification, so a mistake
in ``sealmail.sms.smpp.pdu`` shows up as a disagreement here instead of cancelling out.
It binds one transceiver (checking system_id and password), answers ``submit_sm`` with
a message id and — when the ESME asked for one — a delivery receipt ``deliver_sm`` in
the Appendix B text form with the receipt TLVs; it answers ``enquire_link`` and
``unbind``, and can push inbound texts and its own ``enquire_link`` to the ESME.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

BIND_TRX, BIND_TRX_RESP = 0x00000009, 0x80000009
SUBMIT, SUBMIT_RESP = 0x00000004, 0x80000004
DELIVER, DELIVER_RESP = 0x00000005, 0x80000005
UNBIND, UNBIND_RESP = 0x00000006, 0x80000006
ENQUIRE, ENQUIRE_RESP = 0x00000015, 0x80000015
GENERIC_NACK = 0x80000000
ESME_RBINDFAIL, ESME_RINVPASWD = 0x0000000D, 0x0000000E


def _cstr(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("latin-1"), end + 1


@dataclass
class Submitted:
    message_id: str
    source: str
    source_ton: int
    destination: str
    dest_ton: int
    text: str
    data_coding: int
    registered_delivery: int
    esm_class: int = 0
    udh: bytes = b""  # the user data header (concatenation), without its length octet
    short_message: bytes = b""  # sm_length octets as they came, UDH included


@dataclass
class SmppServer:
    system_id: str = "sealmail"
    password: str = "secret12"
    receipt_state: str = "DELIVRD"
    submitted: list[Submitted] = field(default_factory=list)
    deliver_resps: list[int] = field(default_factory=list)  # sequence numbers the ESME acknowledged
    enquire_links: int = 0
    enquire_resps: int = 0
    binds: list[tuple[str, str, int]] = field(default_factory=list)  # system_id, password, status

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._writers: list[asyncio.StreamWriter] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    def start(self) -> SmppServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self._loop
        ).result(10)
        self.address = self._server.sockets[0].getsockname()[:2]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for w in self._writers:
                w.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # -- pushes from the test ----------------------------------------------------------------
    def deliver(self, source: str, destination: str, text: str) -> None:
        """An inbound (mobile-originated) text to the ESME."""
        body = self._sm(source, destination, 0x00, text.encode("latin-1"), b"")
        self._push(DELIVER, body)

    def enquire(self) -> None:
        self._push(ENQUIRE, b"")

    def _push(self, command: int, body: bytes) -> None:
        async def send() -> None:
            for w in self._writers:
                w.write(struct.pack(">IIII", 16 + len(body), command, 0, next(self._seq) + 1000) + body)
                await w.drain()

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(10)

    # -- the session ---------------------------------------------------------------------------
    @staticmethod
    def _sm(source: str, destination: str, esm: int, payload: bytes, tlvs: bytes) -> bytes:
        src_ton = 1 if source.startswith("+") else 0
        dst_ton = 1 if destination.startswith("+") else 0
        return (
            b"\x00" + bytes([src_ton, 1]) + source.lstrip("+").encode() + b"\x00"
            + bytes([dst_ton, 1]) + destination.lstrip("+").encode() + b"\x00"
            + bytes([esm, 0, 0]) + b"\x00\x00" + bytes([0, 0, 0, 0]) + bytes([len(payload)]) + payload + tlvs
        )  # fmt: skip

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        bound = False
        try:
            while True:
                head = await reader.readexactly(16)
                length, command, _status, seq = struct.unpack(">IIII", head)
                body = await reader.readexactly(length - 16)
                if command == BIND_TRX:
                    sid, pos = _cstr(body, 0)
                    pw, pos = _cstr(body, pos)
                    ok = sid == self.system_id and pw == self.password
                    status = 0 if ok else ESME_RINVPASWD
                    self.binds.append((sid, pw, status))
                    bound = ok
                    self._reply(writer, BIND_TRX_RESP, status, seq, b"SMSC\x00" if ok else b"")
                elif command == SUBMIT and bound:
                    await self._submit(writer, seq, body)
                elif command == ENQUIRE:
                    self.enquire_links += 1
                    self._reply(writer, ENQUIRE_RESP, 0, seq, b"")
                elif command == ENQUIRE_RESP:
                    self.enquire_resps += 1
                elif command == DELIVER_RESP:
                    self.deliver_resps.append(seq)
                elif command == UNBIND:
                    self._reply(writer, UNBIND_RESP, 0, seq, b"")
                    break
                else:
                    self._reply(writer, GENERIC_NACK, ESME_RBINDFAIL, seq, b"")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _reply(self, writer: asyncio.StreamWriter, command: int, status: int, seq: int, body: bytes) -> None:
        writer.write(struct.pack(">IIII", 16 + len(body), command, status, seq) + body)

    async def _submit(self, writer: asyncio.StreamWriter, seq: int, body: bytes) -> None:
        _, pos = _cstr(body, 0)
        src_ton, _src_npi = body[pos], body[pos + 1]
        source, pos = _cstr(body, pos + 2)
        dst_ton, _dst_npi = body[pos], body[pos + 1]
        destination, pos = _cstr(body, pos + 2)
        esm, _pid, _prio = body[pos : pos + 3]
        _, pos = _cstr(body, pos + 3)
        _, pos = _cstr(body, pos)
        registered, _replace, coding, _default = body[pos : pos + 4]
        length = body[pos + 4]
        raw = body[pos + 5 : pos + 5 + length]
        # UDHI (esm_class 0x40): the user data starts with UDHL and the header (TS 23.040).
        udh, payload = (raw[1 : 1 + raw[0]], raw[1 + raw[0] :]) if esm & 0x40 else (b"", raw)
        text = payload.decode("utf-16-be") if coding == 8 else payload.decode("latin-1")
        message_id = f"smsc{next(self._ids):06d}"
        sub = Submitted(
            message_id, source, src_ton, destination, dst_ton, text, coding, registered, esm, udh, raw
        )
        self.submitted.append(sub)
        self._reply(writer, SUBMIT_RESP, 0, seq, message_id.encode() + b"\x00")
        if registered & 0x01:
            receipt = (
                f"id:{message_id} sub:001 dlvrd:001 submit date:2612040300 done date:2612040301 "
                f"stat:{self.receipt_state} err:000 text:{text[:20]}"
            ).encode("latin-1", "replace")
            state = {"DELIVRD": 2, "EXPIRED": 3, "UNDELIV": 5, "REJECTD": 8}.get(self.receipt_state, 7)
            tlvs = struct.pack(">HH", 0x001E, len(message_id) + 1) + message_id.encode() + b"\x00"
            tlvs += struct.pack(">HHB", 0x0427, 1, state)
            sm = self._sm("+" + destination if dst_ton == 1 else destination,
                          "+" + source if src_ton == 1 else source, 0x04, receipt, tlvs)  # fmt: skip
            writer.write(struct.pack(">IIII", 16 + len(sm), DELIVER, 0, next(self._seq) + 5000) + sm)

    def joined(self, destination: str) -> str:
        """The texts to a number as a handset shows them: concatenated parts put together by
        their UDH reference and sequence (IEI 0x00: ref, total, seq)."""
        parts: dict[int, dict[int, str]] = {}
        out: list[str] = []
        for sub in self.find(destination):
            if not sub.udh:
                out.append(sub.text)
                continue
            assert sub.udh[:2] == b"\x00\x03", sub.udh
            ref, total, seq = sub.udh[2], sub.udh[3], sub.udh[4]
            parts.setdefault(ref, {})[seq] = sub.text
            if len(parts[ref]) == total:
                done = parts.pop(ref)
                out.append("".join(done[i] for i in range(1, total + 1)))
        return "\n".join(out)

    def find(self, destination: str) -> list[Submitted]:
        return [s for s in self.submitted if s.destination == destination.lstrip("+")]


def server(**over: Any) -> SmppServer:
    return SmppServer(**over).start()
