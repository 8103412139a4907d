"""Identifiers: a type prefix and a time-ordered ULID body.

Time-ordered ids make cursor pagination a plain ``id < cursor`` comparison and keep new
rows at the right edge of indexes; 80 random bits keep them unguessable.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def new_id(prefix: str) -> str:
    """``<prefix>_<26 chars>``: 48-bit millisecond time + 80 random bits."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"
