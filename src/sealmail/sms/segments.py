"""How a text splits into SMS segments (3GPP TS 23.038 alphabets, TS 23.040 concatenation).

One SMS carries 140 octets of user data: 160 GSM-7 septets or 70 UCS-2 code units.  A
longer text is sent as concatenated segments, each starting with a 6-octet user data
header (information element 0x00: 8-bit reference, total, sequence — TS 23.040
§9.2.3.24.1), which leaves 153 septets or 67 code units per segment.

Texts go in the SMSC default alphabet (SMPP data_coding 0) only when every character is
an ASCII character of the GSM-7 alphabet, one octet each on the wire (the SMSC packs
them into septets); the extension characters (``^ { } \\ [ ~ ] |``) cost two septets
and are never split from their escape.  Anything else goes as UCS-2 (data_coding 8),
and a surrogate pair is never split across segments.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# TS 23.038 §6.2.1: the basic table's ASCII members, and the extension table's (ESC + char).
_BASIC = set("@$\n\r_ !\"#%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_EXTENSION = set("^{}\\[~]|")
SINGLE_GSM, PART_GSM = 160, 153
SINGLE_UCS2, PART_UCS2 = 70, 67
MAX_SEGMENTS = 255  # the total is one octet
UDH_LENGTH = 6


class Coding(enum.IntEnum):
    """SMPP data_coding (§5.2.19): SMSC default alphabet, or UCS-2."""

    GSM = 0x00
    UCS2 = 0x08


class TooLong(ValueError):
    """More than 255 segments: no UDH can number them."""


@dataclass(frozen=True, slots=True)
class Segmented:
    coding: Coding
    parts: tuple[bytes, ...]  # the encoded user data of each segment, without a UDH

    @property
    def concatenated(self) -> bool:
        return len(self.parts) > 1


def is_gsm(text: str) -> bool:
    return all(ch in _BASIC or ch in _EXTENSION for ch in text)


def septets(text: str) -> int:
    return sum(2 if ch in _EXTENSION else 1 for ch in text)


def split(text: str) -> Segmented:
    if is_gsm(text):
        return Segmented(Coding.GSM, tuple(p.encode("ascii") for p in _split_gsm(text)))
    return Segmented(Coding.UCS2, _split_ucs2(text.encode("utf-16-be")))


def _split_gsm(text: str) -> list[str]:
    if septets(text) <= SINGLE_GSM:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        cost = 2 if ch in _EXTENSION else 1
        if used + cost > PART_GSM:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    parts.append("".join(current))
    _check(len(parts))
    return parts


def _split_ucs2(data: bytes) -> tuple[bytes, ...]:
    if len(data) <= SINGLE_UCS2 * 2:
        return (data,)
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        end = min(pos + PART_UCS2 * 2, len(data))
        # A high surrogate (D800-DBFF) at the cut keeps its low half company.
        if end < len(data) and 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2
        parts.append(data[pos:end])
        pos = end
    _check(len(parts))
    return tuple(parts)


def _check(count: int) -> None:
    if count > MAX_SEGMENTS:
        raise TooLong(f"{count} segments: a concatenated SMS has at most {MAX_SEGMENTS}")


def udh(reference: int, total: int, sequence: int) -> bytes:
    """TS 23.040 §9.2.3.24.1: UDHL 5, IEI 0x00 (8-bit reference), IEDL 3, ref, total, seq."""
    return bytes([UDH_LENGTH - 1, 0x00, 0x03, reference & 0xFF, total, sequence])


def count(text: str) -> int:
    """How many segments a text costs (what the HTTP provider bills, and the trail records)."""
    return len(split(text).parts)
