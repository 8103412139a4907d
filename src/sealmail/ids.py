"""Identifiers: a type prefix and a time-ordered ULID body.

Time-ordered ids make cursor pagination a plain ``id < cursor`` comparison and keep new
rows at the right edge of indexes; 80 random bits keep them unguessable.
"""

from __future__ import annotations

import base64
import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# RFC 4648 §6 base32 digit for value v -> Crockford's digit for the same v: the C encoder
# does the bit slicing (an id is minted for every message, recipient, event and audit row).
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
# 26 digits hold 130 bits; the 128-bit value sits at the right, so 4 zero bytes in front make
# 160 bits = exactly 32 digits (no padding) whose first 6 are always "0".
_PAD = bytes(4)


def new_id(prefix: str) -> str:
    """``<prefix>_<26 chars>``: 48-bit millisecond time + 80 random bits."""
    raw = _PAD + (int(time.time() * 1000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + os.urandom(10)
    return f"{prefix}_{base64.b32encode(raw)[6:].translate(_FROM_RFC4648).decode()}"


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids as ``new_id`` makes them, encoded in one pass (bulk imports)."""
    if n <= 0:
        return []
    stamp = _PAD + (int(time.time() * 1000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")
    noise = os.urandom(10 * n)
    raw = b"".join(stamp + noise[i : i + 10] for i in range(0, 10 * n, 10))
    # 20 bytes = 160 bits = exactly 32 base32 digits an id, so one encoding splits evenly.
    text = base64.b32encode(raw).translate(_FROM_RFC4648).decode()
    return [f"{prefix}_{text[i + 6 : i + 32]}" for i in range(0, 32 * n, 32)]
