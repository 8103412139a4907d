"""SMPP 3.4 PDUs: the few an ESME needs, encoded and decoded by hand (SMPP v3.4 Issue 1.2).

Every PDU is a 16-octet header (command_length, command_id, command_status,
sequence_number; big-endian, §3.2) and a body of fixed-order fields: C-Octet strings
(NUL-terminated, each with a maximum size, §3.1), integers, then optional TLVs (§3.2.4).
Decoding is bounded: a PDU longer than ``MAX_PDU`` or a string past its field's maximum
is a ``PduError``, never an unbounded read.
"""

from __future__ import annotations

import enum
import re
import struct
from dataclasses import dataclass, field

from sealmail.sms import segments

HEADER = struct.Struct(">IIII")
MAX_PDU = 4096  # ample for one short message with its TLVs


class PduError(ValueError):
    """Bytes that are not a well-formed PDU (the peer gets generic_nack)."""


class Command(enum.IntEnum):
    GENERIC_NACK = 0x80000000
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015


class Status(enum.IntEnum):
    """command_status values used here (§5.1.3)."""

    OK = 0x00000000
    INVALID_LENGTH = 0x00000002
    INVALID_COMMAND = 0x00000003
    BIND_FAILED = 0x0000000D
    INVALID_PASSWORD = 0x0000000E
    SYSTEM_ERROR = 0x00000008
    THROTTLED = 0x00000058


class Tag(enum.IntEnum):
    RECEIPTED_MESSAGE_ID = 0x001E
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


# §5.2.28 message_state values.
MESSAGE_STATES = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
ESM_RECEIPT = 0x04  # esm_class bits 2-5: SMSC delivery receipt (§5.2.12)
ESM_UDHI = 0x40  # esm_class bit 6: the short message begins with a user data header
DC_DEFAULT, DC_UCS2 = 0x00, 0x08


@dataclass(frozen=True, slots=True)
class Pdu:
    command: Command
    status: int
    sequence: int
    body: bytes = b""


def encode(pdu: Pdu) -> bytes:
    return HEADER.pack(HEADER.size + len(pdu.body), pdu.command, pdu.status, pdu.sequence) + pdu.body


def header_length(head: bytes) -> int:
    """The command_length of a header, checked against the bounds."""
    (length,) = struct.unpack(">I", head[:4])
    if length < HEADER.size or length > MAX_PDU:
        raise PduError(f"command_length {length} out of bounds")
    return int(length)


def decode(data: bytes) -> Pdu:
    length = header_length(data)
    if len(data) != length:
        raise PduError("command_length does not match the PDU")
    _, command, status, sequence = HEADER.unpack(data[: HEADER.size])
    try:
        cmd = Command(command)
    except ValueError as exc:
        raise PduError(f"unknown command_id {command:#010x}") from exc
    return Pdu(cmd, status, sequence, data[HEADER.size :])


# -- body fields -------------------------------------------------------------------------------
def cstr(value: str, maximum: int) -> bytes:
    raw = value.encode("ascii")
    if len(raw) >= maximum or b"\x00" in raw:
        raise PduError(f"C-Octet string longer than {maximum - 1}")
    return raw + b"\x00"


class Reader:
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def cstr(self, maximum: int) -> str:
        end = self.body.find(b"\x00", self.pos, self.pos + maximum)
        if end < 0:
            raise PduError(f"C-Octet string missing its NUL within {maximum} octets")
        value = self.body[self.pos : end].decode("ascii", "replace")
        self.pos = end + 1
        return value

    def u8(self) -> int:
        if self.pos >= len(self.body):
            raise PduError("body ends early")
        self.pos += 1
        return self.body[self.pos - 1]

    def octets(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise PduError("body ends early")
        self.pos += n
        return self.body[self.pos - n : self.pos]

    def tlvs(self) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        while self.pos < len(self.body):
            tag, length = struct.unpack(">HH", self.octets(4))
            out[tag] = self.octets(length)
        return out


def tlv(tag: Tag, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


# -- bind ---------------------------------------------------------------------------------------
def bind_transceiver(system_id: str, password: str, system_type: str = "") -> bytes:
    # interface_version 0x34, addr_ton/npi 0, empty address_range (§4.1.5).
    return cstr(system_id, 16) + cstr(password, 9) + cstr(system_type, 13) + bytes([0x34, 0, 0]) + b"\x00"


def parse_bind(body: bytes) -> tuple[str, str]:
    r = Reader(body)
    return r.cstr(16), r.cstr(9)


# -- short messages (submit_sm and deliver_sm share one layout, §4.4.1 / §4.6.1) ------------------
@dataclass(frozen=True, slots=True)
class ShortMessage:
    source: str
    destination: str
    text: str
    esm_class: int = 0
    registered_delivery: int = 0
    tlvs: dict[int, bytes] = field(default_factory=dict)

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & 0x3C == ESM_RECEIPT


def _address(number: str) -> tuple[int, int, str]:
    # An E.164 number goes as TON international (1), NPI ISDN (1), without the "+".
    if number.startswith("+"):
        return 1, 1, number[1:]
    return 0, 0, number


def short_messages(m: ShortMessage, reference: int = 0) -> list[bytes]:
    """The submit_sm bodies of one text: one, or one per concatenated segment.

    A text longer than one SMS is split (``sms.segments``) and every segment carries the
    concatenation UDH, with esm_class's UDHI bit set (§5.2.12, 0x40), so the handset
    joins them; ``reference`` tells this text's segments apart from another's.  Only the
    last segment asks for a delivery receipt: the text has one receipt, naming the id the
    trail keeps, and no receipt of a part is left without a text to land on.
    """
    seg = segments.split(m.text)
    s_ton, s_npi, src = _address(m.source)
    d_ton, d_npi, dst = _address(m.destination)
    esm = m.esm_class | (ESM_UDHI if seg.concatenated else 0)
    head = cstr("", 6) + bytes([s_ton, s_npi]) + cstr(src, 21) + bytes([d_ton, d_npi]) + cstr(dst, 21)
    head += bytes([esm, 0, 0]) + cstr("", 17) + cstr("", 17)
    extra = b"".join(tlv(Tag(t), v) for t, v in m.tlvs.items())
    total = len(seg.parts)
    bodies = []
    for i, part in enumerate(seg.parts, start=1):
        payload = segments.udh(reference, total, i) + part if seg.concatenated else part
        registered = m.registered_delivery if i == total else 0
        fields = bytes([registered, 0, seg.coding, 0, len(payload)])
        bodies.append(head + fields + payload + extra)
    return bodies


def parse_short_message(body: bytes) -> ShortMessage:
    r = Reader(body)
    r.cstr(6)
    s_ton, _ = r.u8(), r.u8()
    src = r.cstr(21)
    d_ton, _ = r.u8(), r.u8()
    dst = r.cstr(21)
    esm, _, _ = r.u8(), r.u8(), r.u8()
    r.cstr(17)
    r.cstr(17)
    registered, _, coding, _ = r.u8(), r.u8(), r.u8(), r.u8()
    payload = r.octets(r.u8())
    tlvs = r.tlvs()
    if not payload and Tag.MESSAGE_PAYLOAD in tlvs:
        payload = tlvs[Tag.MESSAGE_PAYLOAD]
    if esm & ESM_UDHI and payload:
        # One segment of a concatenated text: its UDH is not text (a STOP must still match).
        payload = payload[payload[0] + 1 :]
    text = payload.decode("utf-16-be", "replace") if coding == DC_UCS2 else payload.decode("latin-1")
    return ShortMessage(
        ("+" if s_ton == 1 else "") + src, ("+" if d_ton == 1 else "") + dst, text, esm, registered, tlvs
    )


def message_id_body(message_id: str) -> bytes:
    return cstr(message_id, 65)


def parse_message_id(body: bytes) -> str:
    return Reader(body).cstr(65) if body else ""


# -- delivery receipts (SMPP 3.4 Appendix B) ----------------------------------------------------
RECEIPT = re.compile(r"id:(?P<id>\S{1,65}).*?stat:(?P<stat>[A-Z]{7})(?:.*?err:(?P<err>\w{1,3}))?", re.S)


@dataclass(frozen=True, slots=True)
class Receipt:
    message_id: str
    state: str  # DELIVRD, UNDELIV, EXPIRED, REJECTD, …
    error: str = ""


def parse_receipt(m: ShortMessage) -> Receipt | None:
    """The receipt a deliver_sm carries: the TLVs when present, else the Appendix B text."""
    hit = RECEIPT.search(m.text[:400])
    rid = m.tlvs.get(Tag.RECEIPTED_MESSAGE_ID)
    state = m.tlvs.get(Tag.MESSAGE_STATE)
    if rid is not None and state is not None and len(state) == 1:
        return Receipt(
            rid.rstrip(b"\x00").decode("ascii", "replace"),
            MESSAGE_STATES.get(state[0], "UNKNOWN"),
            hit.group("err") or "" if hit else "",
        )
    if hit is None:
        return None
    return Receipt(hit.group("id"), hit.group("stat"), hit.group("err") or "")
