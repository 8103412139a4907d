"""Cheap proofs that a detector cannot fire on a text, so the scan can skip it.

Python's ``re`` scans a text position by position, and a pattern that starts with a digit
class or a lookbehind (most detectors here) costs 20-40 ns per character: a 5 KB text paid
that about fifteen times, once per detector pattern.  A bytes translation, by contrast, runs
at memory speed, and a pattern that starts with a literal skips to its candidates with a
tight C loop.  So each text is translated once into *shapes* — one byte per character naming
its class (digit, upper-case letter, other word character, hyphen, anything else) — and each
detector gets a necessary condition over the shapes: an over-approximation of its pattern that
starts with a literal.  When the condition fails the detector cannot fire and is skipped; when
it holds the detector runs exactly as before, over the whole text.  Findings are therefore the
same by construction, provided every condition here is implied by its detector's pattern
(``tests/unit/dlp/test_prefilter.py`` checks that against the detectors, over the corpus and
generated texts).

Soundness rests on the shape seeing every character a pattern could use.  ``\\d`` and
case-insensitive letters are Unicode-aware, so a text with a non-ASCII decimal digit, or a
non-ASCII character that case-maps to an ASCII letter (the Kelvin sign, dotless i, long s),
gets no shapes and every detector runs.  Other non-ASCII characters (accents, curly quotes)
cannot be part of any match and become "anything else" — a boundary — which only ever lets a
condition hold more often.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# The label gates the detectors apply themselves (``_mentions``), shared so they stay in step.
from sealmail.dlp.detectors import (
    DOB_GATE,
    MEMBER_GATE,
    MRN_GATE,
    Detector,
    KeywordDetector,
    MrnDetector,
)

_ASCII = bytes(range(128))
_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = b"abcdefghijklmnopqrstuvwxyz_"


def _table(classes: dict[bytes, bytes]) -> bytes:
    table = bytearray(b"s" * 256)
    for chars, cls in classes.items():
        for char in chars:
            table[char] = cls[0]
    return bytes(table)


# Shape "word": d = digit, W = A-Z, w = a-z or "_", "-" = hyphen, s = anything else.
_WORD = _table({_DIGITS: b"d", _UPPER: b"W", _LOWER: b"w", b"-": b"-"})
# Shape "number": z = 0, o = 1, d = 2-9 (area codes, NPIs start with 1 or 2), w = letter, "-", s.
_NUMBER = _table({b"0": b"z", b"1": b"o", b"23456789": b"d", _UPPER + _LOWER: b"w", b"-": b"-"})

# Each over-approximates a detector's main pattern on the padded "word" shape (the pad stands
# for the start and end of the text, where lookbehinds and lookaheads see no character).
# SSN: a digit after a non-word, non-hyphen character; 3-2-4 digits, same separator or none.
_SSN = re.compile(rb"sddd(?:dddddd|[-s]dd[-s]dddd)(?![-dWw])")
# DEA: two letters (the second may be 9), seven digits, on word boundaries.
_DEA = re.compile(rb"ddddddd(?![-dWw])(?<=sW[Wd]ddddddd)")
# MBI: digit, letter, letter-or-digit, digit, then the same twice more (CMS positions).
_MBI = re.compile(rb"sdW[Wd]d-?W[Wd]d-?WWdd(?![-dWw])")
# Dates the DOB detector reads: d/m/y with "/", "." or "-" (s or - here).  ISO dates and
# spelled months have a year 19xx or 20xx after a boundary; see _YEAR.  No lookahead: the
# detector searches a window, and a window's end passes any lookahead.
_DATE = re.compile(rb"sd{1,2}[-s]d{1,2}[-s]dd")
# A street number: 1-6 digits, maybe a letter, one or two blanks, then a word or number.
_STREET = re.compile(rb"sd{1,6}W?s{1,2}[Wd]")
# Street-type words of the address pattern, shortened to substrings that cover them.
_STREET_WORDS = (
    "St",
    "Av",
    "Road",
    "Rd",
    "Boulevard",
    "Blvd",
    "Dr",
    "Lane",
    "Ln",
    "Court",
    "Ct",
    "Way",
    "Pl",
    "Ter",
    "Cir",
    "Parkway",
    "Pkwy",
    "Highway",
    "Hwy",
    "Trail",
    "Trl",
    "Sq",
)
# On the "number" shape: NPIs start with 1 (o) or 2 (d, with 3-9), ten digits in all.
_NPI = (re.compile(rb"so[zod]{9}(?![-zodw])"), re.compile(rb"sd[zod]{9}(?![-zodw])"))
# On the "number" shape: a year 19xx (o, d) or 20xx (d, z) after a boundary.
_YEAR = (re.compile(rb"sod[zod]{2}"), re.compile(rb"sdz[zod]{2}"))
# NANP numbers: an area code starting 2-9 ("(" and "." are s), or 1 / +1 then the area code.
_PHONE = (
    re.compile(rb"sd[zod]{2}(?:-|s{1,2})?[zod]{3}[-s]?[zod]{4}(?![-zodw])"),
    re.compile(rb"so[-s]?s?d[zod]{2}(?:-|s{1,2})?[zod]{3}[-s]?[zod]{4}(?![-zodw])"),
)


def _shapeable(text: str) -> bytes | None:
    """The text as bytes a shape can be made of, or None when it must not be shaped."""
    if text.isascii():
        return text.encode("ascii")
    # Lone surrogates come from undecodable header bytes; they are inert.
    data = text.encode("utf-8", "surrogatepass")
    others = data.translate(None, _ASCII).decode("utf-8", "surrogatepass")
    if not all(_inert(char) for char in set(others)):
        return None
    # Every byte of a multi-byte character becomes "s": a run of boundaries.
    return data


def _inert(char: str) -> bool:
    """A non-ASCII character no detector pattern can match as a digit or an ASCII letter."""
    if char.isdecimal():
        return False
    return not any(c.isascii() for c in char.lower() + char.upper() + char.casefold())


class TextShape:
    """One text's shapes (None when it must not be shaped) and lower-cased form."""

    __slots__ = ("_lowered", "number", "text", "word")

    def __init__(self, text: str) -> None:
        self.text = text
        self._lowered: str | None = None
        data = _shapeable(text)
        # Padded: the pad stands for the start and end of the text, where lookarounds see
        # no character, like a boundary.
        self.word = None if data is None else b"s" + data.translate(_WORD) + b"s"
        self.number = None if data is None else b"s" + data.translate(_NUMBER) + b"s"

    @property
    def lowered(self) -> str:
        if self._lowered is None:
            self._lowered = self.text.lower()
        return self._lowered

    def mentions(self, words: tuple[str, ...]) -> bool:
        """The detectors' own label gate, on the shared lower-cased text."""
        lowered = self.lowered
        return any(word in lowered for word in words)

    def digits_at_least(self, count: int) -> bool:
        word = self.word
        return word is None or word.count(b"d") >= count


def _search(shape: bytes | None, prefix: bytes, pattern: re.Pattern[bytes]) -> bool:
    # The substring test runs at memory speed and settles most texts before the regex.
    return shape is None or (prefix in shape and pattern.search(shape) is not None)


def _ssn(shape: TextShape, _: Detector) -> bool:
    return _search(shape.word, b"sddd", _SSN)


def _npi(shape: TextShape, _: Detector) -> bool:
    number = shape.number
    return number is None or any(_search(number, p.pattern[:2], p) for p in _NPI)


def _dea(shape: TextShape, _: Detector) -> bool:
    return _search(shape.word, b"ddddddd", _DEA)


def _mbi(shape: TextShape, _: Detector) -> bool:
    return _search(shape.word, b"sdW", _MBI)


def _icd10(shape: TextShape, _: Detector) -> bool:
    # A letter (either case) after a boundary, then a digit.
    word = shape.word
    return word is None or b"sWd" in word or b"swd" in word


def _phone(shape: TextShape, _: Detector) -> bool:
    number = shape.number
    return number is None or any(_search(number, p.pattern[:2], p) for p in _PHONE)


def _address(shape: TextShape, _: Detector) -> bool:
    text = shape.text
    if "Box" in text:  # the P.O. Box pattern's one literal word
        return True
    return _search(shape.word, b"sd", _STREET) and any(word in text for word in _STREET_WORDS)


def _dob(shape: TextShape, _: Detector) -> bool:
    number = shape.number
    dated = _search(shape.word, b"sd", _DATE) or any(_search(number, p.pattern[:3], p) for p in _YEAR)
    return dated and shape.mentions(DOB_GATE)


def _member(shape: TextShape, _: Detector) -> bool:
    # The label is the evidence, and the id after it holds at least four digits.
    return shape.digits_at_least(4) and shape.mentions(MEMBER_GATE)


def _mrn(shape: TextShape, detector: Detector) -> bool:
    if shape.digits_at_least(4) and shape.mentions(MRN_GATE):
        return True
    if not isinstance(detector, MrnDetector):
        return True
    return any(_tenant_pattern_possible(shape, p) for p in detector.tenant_patterns)


def _keyword(shape: TextShape, detector: Detector) -> bool:
    if not isinstance(detector, KeywordDetector):
        return True
    return detector.pattern is not None and shape.mentions(detector.gate)


_CHECKS: dict[str, Callable[[TextShape, Detector], bool]] = {
    "ssn": _ssn,
    "mrn": _mrn,
    "dob": _dob,
    "icd10": _icd10,
    "npi": _npi,
    "dea": _dea,
    "mbi": _mbi,
    "member_id": _member,
    "phone_in_context": _phone,
    "address_in_context": _address,
    "keyword": _keyword,
}


def may_fire(detector: Detector, shape: TextShape) -> bool:
    """False only when ``detector`` certainly finds nothing in ``shape.text``."""
    check = _CHECKS.get(detector.name)
    return check is None or check(shape, detector)


# ---------------------------------------------------------------------------------------------
# Tenant MRN patterns: the literal text every match starts with
# ---------------------------------------------------------------------------------------------

# compile_tenant_pattern's wrapping: optional leading flags, then the body between boundaries.
_WRAPPED = re.compile(r"(\(\?[aiLmsux]+\))?\(\?<!\[A-Za-z0-9\]\)\(\?:(.*)\)\(\?!\[A-Za-z0-9\]\)", re.S)
_META = frozenset("\\.^$*+?{}[]|()")
_prefixes: dict[str, tuple[str, bool]] = {}


def literal_prefix(wrapped: str) -> tuple[str, bool]:
    """(the literal every match of a wrapped tenant pattern starts with, ignore case).

    ``("", False)`` when there is none to rely on: an alternation anywhere, verbose mode, or a
    pattern that does not start with plain characters.
    """
    known = _prefixes.get(wrapped)
    if known is not None:
        return known
    result = ("", False)
    m = _WRAPPED.fullmatch(wrapped)
    if m is not None and "|" not in m[2] and "x" not in (m[1] or ""):
        body = m[2]
        end = 0
        while end < len(body) and body[end] not in _META:
            end += 1
        # A quantifier applies to the character before it, which is then optional.
        if end < len(body) and body[end] in "*+?{":
            end -= 1
        result = (body[: max(end, 0)], "i" in (m[1] or ""))
    _prefixes[wrapped] = result
    return result


def _tenant_pattern_possible(shape: TextShape, pattern: re.Pattern[str]) -> bool:
    prefix, ignore_case = literal_prefix(pattern.pattern)
    if not prefix:
        return True
    if not ignore_case:
        return prefix in shape.text
    # Case-insensitive matching is Unicode-aware ("k" matches the Kelvin sign); lower-casing
    # agrees with it only for ASCII prefixes on texts that can be shaped.
    if not prefix.isascii() or shape.word is None:
        return True
    return prefix.lower() in shape.lowered
