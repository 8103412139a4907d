"""Whole numbers read from text the outside world wrote: headers, query strings, form fields,
tokens, a remote server's replies.

``str.isdigit`` is the wrong test for them: it admits "²" (``int`` then raises, a 500) and
"٣" (``int`` reads 3), and a run of ASCII digits past 4,300 makes ``int`` raise too.  Every
such number is read here, as RFC 9110's ``1*DIGIT`` reads it: ASCII digits and nothing else.
"""

from __future__ import annotations

from typing import Final

# Below 2**63: every count, size, offset and time the product reads fits, and a column of
# PostgreSQL's BIGINT too.
MAX_DIGITS: Final = 18


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits (no sign, no space, nothing else)."""
    return text.isascii() and text.isdigit()


def whole_number(text: str) -> int | None:
    """The number ``text`` spells in at most ``MAX_DIGITS`` ASCII digits, or None."""
    if len(text) <= MAX_DIGITS and ascii_digits(text):
        return int(text)
    return None


def saturating(text: str, ceiling: int) -> int | None:
    """The number ``text`` spells in ASCII digits, however many, at most ``ceiling``; None
    when it is not digits.  For values where "more than we can use" is a fine answer: an end
    offset past the file, a delay past the longest wait."""
    if not ascii_digits(text):
        return None
    digits = text.lstrip("0") or "0"
    return min(int(digits), ceiling) if len(digits) <= MAX_DIGITS else ceiling


def exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` is ASCII digits naming more than ``limit``: a declared length of 5,000
    digits exceeds any limit; text that is not digits exceeds nothing (say so elsewhere)."""
    over = saturating(text, limit + 1)
    return over is not None and over > limit


def within(text: str, limit: int) -> bool:
    """Whether ``text`` is ASCII digits naming at most ``limit`` (a length a server takes)."""
    number = saturating(text, limit + 1)
    return number is not None and number <= limit
