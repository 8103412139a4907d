"""The little DER (ITU-T X.690) that CMS enveloping and capability harvesting need.

pyca/``cryptography`` builds EnvelopedData only with AES-CBC and RSA PKCS#1 v1.5 recipients;
ECDH key agreement (RFC 5753), RSA-OAEP (RFC 3560) and AuthEnvelopedData (RFC 5083) have to
be encoded by hand.  The structures are small and fixed, so an encoder of a dozen tag kinds
and a reader of TLVs are enough; no general ASN.1 compiler is pulled in for them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DerError",
    "Tlv",
    "bit_string",
    "context",
    "integer",
    "null",
    "octet_string",
    "oid",
    "parse",
    "parse_all",
    "read_oid",
    "sequence",
    "set_of",
]

SEQUENCE = 0x30
SET = 0x31
OID = 0x06
OCTET_STRING = 0x04
INTEGER = 0x02


class DerError(ValueError):
    """Bytes that are not the DER this module expects."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    # X.690 §11.6: DER orders the elements of a SET OF by their encodings.
    return tlv(SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are needed here")
    # X.690 §8.3: two's complement, so a leading 1 bit needs a zero octet in front.
    return tlv(INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def octet_string(value: bytes) -> bytes:
    return tlv(OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    return tlv(0x03, b"\x00" + value)  # no unused bits


def null() -> bytes:
    return b"\x05\x00"


def oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(OID, bytes(body))


def context(number: int, content: bytes, *, constructed: bool = True) -> bytes:
    """A context-specific tag ``[number]``: EXPLICIT or IMPLICIT-constructed, or primitive."""
    return tlv((0xA0 if constructed else 0x80) | number, content)


# ---------------------------------------------------------------------------------- reader


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    content: bytes
    raw: bytes  # the whole encoding, tag and length included

    @property
    def children(self) -> list[Tlv]:
        return parse_all(self.content)


def parse(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """One TLV at ``offset`` and the offset after it."""
    if offset + 2 > len(data):
        raise DerError("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not used by CMS")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise DerError("unsupported or truncated DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("truncated DER content")
    return Tlv(tag, data[pos:end], data[offset:end]), end


def parse_all(data: bytes) -> list[Tlv]:
    items, pos = [], 0
    while pos < len(data):
        item, pos = parse(data, pos)
        items.append(item)
    return items


def read_oid(item: Tlv) -> str:
    if item.tag != OID or not item.content:
        raise DerError("not an OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in item.content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
