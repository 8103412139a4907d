"""Identifiers: a type prefix and a time-ordered ULID body.

Time-ordered ids make cursor pagination a plain ``id < cursor`` comparison and keep new
rows at the right edge of indexes; 80 random bits keep them unguessable.
"""

from __future__ import annotations

import base64
import os
import time
from typing import Final

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
# RFC 4648 §6 base32 digit for value v -> Crockford's digit for the same v: the C encoder
# does the bit slicing (an id is minted for every message, recipient, event and audit row).
_FROM_RFC4648 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode())
# 26 digits hold 130 bits; the 128-bit value sits at the right, so 4 zero bytes in front make
# 160 bits = exactly 32 digits (no padding) whose first 6 are always "0".
_PAD = bytes(4)
# A random byte -> the Crockford digit of its low five bits (``new_ids``).
_RANDOM_DIGIT = bytes(_ALPHABET.encode()[b & 31] for b in range(256))


# A 10-bit value -> its two Crockford digits (``new_id``).
_PAIRS: Final = tuple(a + b for a in _ALPHABET for b in _ALPHABET)


def new_id(prefix: str) -> str:
    """``<prefix>_<26 chars>``: 48-bit millisecond time + 80 random bits.

    The 130 bits (2 zero bits first) as 13 pairs of digits from a table: ``base64.b32encode``
    is a Python loop in CPython 3.11, and an id is minted for every message, recipient, event
    and audit row (about twice as fast).
    """
    v = ((int(time.time() * 1000) & 0xFFFF_FFFF_FFFF) << 80) | int.from_bytes(os.urandom(10), "big")
    p = _PAIRS
    return (
        f"{prefix}_{p[v >> 120]}{p[v >> 110 & 1023]}{p[v >> 100 & 1023]}{p[v >> 90 & 1023]}"
        f"{p[v >> 80 & 1023]}{p[v >> 70 & 1023]}{p[v >> 60 & 1023]}{p[v >> 50 & 1023]}"
        f"{p[v >> 40 & 1023]}{p[v >> 30 & 1023]}{p[v >> 20 & 1023]}{p[v >> 10 & 1023]}{p[v & 1023]}"
    )


def new_ids(prefix: str, n: int) -> list[str]:
    """``n`` ids of ``new_id``'s form and distribution, minted in one pass (bulk imports).

    Of the 26 digits, the first 10 are the 2 zero bits and the 48-bit time, the same for the
    whole batch, and the last 16 are the 80 random bits, 5 to a digit.  So the batch's time
    digits are encoded once and each random digit is drawn directly: one random byte a digit,
    its low five bits picking it (256 is a multiple of 32, so each digit is uniform and the 16
    carry 80 uniform bits).  ``base64.b32encode`` is a Python loop in CPython 3.11; this is
    two C calls for the whole batch (4.5 µs an id before, under load, on a contact import).
    """
    if n <= 0:
        return []
    stamp = _PAD + (int(time.time() * 1000) & 0xFFFF_FFFF_FFFF).to_bytes(6, "big")
    head = f"{prefix}_{base64.b32encode(stamp + bytes(10))[6:16].translate(_FROM_RFC4648).decode()}"
    text = os.urandom(16 * n).translate(_RANDOM_DIGIT).decode()
    return [head + text[i : i + 16] for i in range(0, 16 * n, 16)]
