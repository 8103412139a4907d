"""Opaque, signed tokens for tracking and unsubscribe links.

A token names one recipient row and what the link does, nothing else: no address, no
message content, no URL.  Layout before base64url (no padding)::

    version (1) | kind (1: o, c, u) | link index (2, big-endian) | recipient id (ASCII) | MAC (16)

The MAC is HMAC-SHA256 under the installation's ``links`` key (``services.site_secrets``),
truncated to 128 bits: a token cannot be guessed or altered, and any process of the
deployment verifies it without a database read.  Tokens do not expire: a
``List-Unsubscribe`` link must keep working for as long as the message sits in a mailbox
(RFC 8058 §3.1 asks for no expiry the recipient could notice).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from dataclasses import dataclass

VERSION = 1
MAC_BYTES = 16
_DOMAIN = b"sealmail/link-token/v1"
# Recipient ids are ``rcp_`` + 26 Crockford characters; anything much longer is not ours.
_MAX_ID = 64
MAX_LINKS = 0xFFFF


class Kind(enum.StrEnum):
    OPEN = "o"
    CLICK = "c"
    UNSUBSCRIBE = "u"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    recipient_id: str
    link: int = 0


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, _DOMAIN + payload, hashlib.sha256).digest()[:MAC_BYTES]


def make(key: bytes, token: Token) -> str:
    if not 0 <= token.link <= MAX_LINKS:
        raise ValueError("link index out of range")
    rid = token.recipient_id.encode("ascii")
    if not rid or len(rid) > _MAX_ID:
        raise ValueError("not a recipient id")
    payload = bytes([VERSION]) + token.kind.value.encode() + token.link.to_bytes(2, "big") + rid
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def read(key: bytes, text: str, kind: Kind) -> Token | None:
    """The token's contents if it is genuine and of ``kind``; ``None`` for anything else."""
    if not 8 <= len(text) <= 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Re-encoding must give the same text: no second spelling of one token (padding bits).
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != text:
        return None
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if len(payload) < 5 or not hmac.compare_digest(mac, _mac(key, payload)):
        return None
    if payload[0] != VERSION or payload[1:2] != kind.value.encode():
        return None
    try:
        rid = payload[4:].decode("ascii")
    except UnicodeDecodeError:  # pragma: no cover — only we sign, and we sign ASCII
        return None
    return Token(kind, rid, int.from_bytes(payload[2:4], "big"))
