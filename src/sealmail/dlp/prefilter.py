"""Where a detector can match in a text: cheap byte shapes, so the scan tries only there.

Python's ``re`` scans a text position by position, and a pattern that starts with a digit
class or a lookbehind (most detectors here) costs 20-40 ns per character: a 5 KB text paid
that about fifteen times, once per detector pattern.  A bytes translation, by contrast, runs
at memory speed, and a pattern that starts with a literal skips to its candidates with a
tight C loop.  So each text is translated once into *shapes* — one byte per character naming
its class (digit, upper-case letter, other word character, hyphen, anything else) — and each
detector's main pattern gets a pattern over the shapes that over-approximates it and starts
with a literal: the places where it could start.  No place: the detector is skipped.  Some:
the detector tries its own pattern there only (:func:`matches`, which gives what ``finditer``
gives as long as every place a match can start is among them).  Label-led detectors start
where one of their label words occurs (:meth:`TextShape.word_starts`).  Findings are the same
by construction, provided every shape pattern is implied by its detector's pattern;
``tests/unit/dlp/test_prefilter.py`` checks that span for span against the whole-text search,
over the corpus, mutations of it and generated texts.

Soundness rests on the shape seeing every character a pattern could use.  ``\\d`` and
case-insensitive letters are Unicode-aware, so a text with a non-ASCII decimal digit, or a
non-ASCII character that case-maps to an ASCII letter (the Kelvin sign, dotless i, long s),
gets no shapes and every detector searches it whole.  Other non-ASCII characters (accents,
curly quotes) cannot be part of any match and become "anything else" — a boundary — which only
ever lets a shape pattern match more often; positions then shift, so such a text only learns
whether a detector can match, not where.  Past :data:`MAX_STARTS` candidates (hostile input)
a text is searched whole too, at ``re``'s own speed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

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

# Where a detector's main pattern can start, as patterns over a padded shape: each
# over-approximates the detector's pattern and starts with a literal (its first character is
# the one before the match, a boundary "s", or the pad for the start of the text).  Shape
# index j is text index j - 1, so a shape match at j names text position j + delta.
_Kind = tuple[str, tuple[re.Pattern[bytes], ...], tuple[int, ...]]
_KINDS: dict[str, _Kind] = {
    # SSN: 3-2-4 digits with the same separator ("-" or blank) or none, on boundaries.
    "ssn": ("word", (re.compile(rb"sd(?=dd(?:dddddd|[-s]dd[-s]dddd)(?![-dWw]))"),), (0,)),
    # NPI: ten digits starting with 1 (o) or 2 (d, which also holds 3-9).
    "npi": (
        "number",
        (re.compile(rb"so(?=[zod]{9}(?![-zodw]))"), re.compile(rb"sd(?=[zod]{9}(?![-zodw]))")),
        (0,),
    ),
    # DEA: two letters (the second may be 9) and seven digits, on boundaries.
    "dea": ("word", (re.compile(rb"sW(?=[Wd]ddddddd(?![-dWw]))"),), (0,)),
    # MBI: digit, letter, letter or digit, digit, twice more (CMS positions), maybe dashed.
    "mbi": ("word", (re.compile(rb"sd(?=W[Wd]d-?W[Wd]d-?WWdd(?![-dWw]))"),), (0,)),
    # ICD-10: a letter of either case after a boundary, a digit, then a digit or letter;
    # the pattern's match starts at the digit.
    "icd10": ("word", (re.compile(rb"sWd(?=[dWw])"), re.compile(rb"swd(?=[dWw])")), (1,)),
    # NANP phone numbers: an area code starting 2-9, bare or after "(" (both s), or 1 / +1
    # first; the match starts at the digit or at the "(" / "+" before it.
    "phone": (
        "number",
        (
            re.compile(rb"sd(?=[zod]{2}(?:-|s{1,2})?[zod]{3}[-s]?[zod]{4}(?![-zodw]))"),
            re.compile(rb"so(?=[-s]?s?d[zod]{2}(?:-|s{1,2})?[zod]{3}[-s]?[zod]{4}(?![-zodw]))"),
        ),
        (-1, 0),
    ),
    # A street number: 1-6 digits, maybe a letter, one or two blanks, a word or a number.
    "street": ("word", (re.compile(rb"sd(?=d{0,5}W?s{1,2}[Wd])"),), (0,)),
    # Dates the DOB detector reads: d/m/y with "/", "." or "-"; ISO dates and spelled months
    # hold a year 19xx (o, d) or 20xx (d, z).  No lookahead past the digits: the detector
    # searches a window, and the window's end passes any lookahead.
    "date": (
        "number",
        (
            *(re.compile(rb"s%c(?=[zod]?[-s][zod]{1,2}[-s][zod]{2})" % c) for c in b"zod"),
            re.compile(rb"sod(?=[zod]{2})"),
            re.compile(rb"sdz(?=[zod]{2})"),
        ),
        (0,),
    ),
}

# The fewest digits each kind's shape patterns hold (counted off the patterns above): a text
# with fewer has no match of that kind, settled by the one digit count every text gets.
MIN_DIGITS: dict[str, int] = {
    "ssn": 9,
    "npi": 10,
    "dea": 7,
    "mbi": 5,
    "icd10": 1,
    "phone": 10,
    "street": 1,
    "date": 4,
}

# Past this many candidate starts a text is searched whole: trying each in Python costs more
# than re's own scan (a hostile "ptptpt..." part of 2 M characters would name a million).
MAX_STARTS = 2000

# The kinds whose start positions are known (others only say whether a match is possible).
POSITIONED = frozenset(_KINDS)


def _inert(char: str) -> bool:
    """A non-ASCII character no detector pattern can match as a digit or an ASCII letter."""
    if char.isdecimal():
        return False
    return not any(c.isascii() for c in char.lower() + char.upper() + char.casefold())


def _shapeable(text: str) -> bytes | None:
    """The text as bytes a shape can be made of, or None when it must not be shaped."""
    if text.isascii():
        return text.encode("ascii")
    # Lone surrogates come from undecodable header bytes; they are inert.
    data = text.encode("utf-8", "surrogatepass")
    others = data.translate(None, _ASCII).decode("utf-8", "surrogatepass")
    if not all(_inert(char) for char in set(others)):
        return None
    # Every byte of a multi-byte character becomes "s": a run of boundaries.  Positions then
    # differ from the text's, so such a text gets answers about existence, never positions.
    return data


class ScanBudgetExceeded(Exception):
    """A message offered more candidate matches than one scan examines (see :class:`ScanBudget`)."""


class ScanBudget:
    """How many candidate matches one message's scan may examine, shared by all its parts.

    Each candidate costs a context check (a label search in a window around it); a hostile
    text made of nothing but candidates ("1 Main St 1 Main St ...") cost seconds per part and
    minutes per message.  Past the budget the scan stops and the rest is reported unscanned.
    """

    __slots__ = ("left",)

    def __init__(self, candidates: int) -> None:
        self.left = candidates

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ScanBudgetExceeded


class TextShape:
    """One text's shapes (None when it must not be shaped) and lower-cased form."""

    __slots__ = ("_digits", "_lowered", "_starts", "ascii", "budget", "number", "text", "word")

    def __init__(self, text: str, budget: ScanBudget | None = None) -> None:
        self.text = text
        self.budget = budget
        self._lowered: str | None = None
        self._digits = -1
        self._starts: dict[str, list[int] | None] = {}
        self.ascii = text.isascii()
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
        if self.word is None:
            return True
        if self._digits < 0:
            self._digits = self.word.count(b"d")
        return self._digits >= count

    def word_starts(self, words: tuple[str, ...]) -> list[int] | None:
        """Every position where the lower-cased text has one of ``words`` (lower case), in
        order; None for a text that is not ASCII, whose lower-casing can change lengths."""
        if not self.ascii:
            return None
        lowered = self.lowered
        found: set[int] = set()
        for word in words:
            at = lowered.find(word)
            while at >= 0:
                found.add(at)
                if len(found) > MAX_STARTS:
                    return None
                at = lowered.find(word, at + 1)
        return sorted(found)

    def possible(self, kind: str) -> bool:
        """Whether a match of ``kind`` can start anywhere in the text."""
        # Every kind holds digits, and one count settles texts with too few.
        if not self.digits_at_least(MIN_DIGITS[kind]):
            return False
        if self.ascii:
            return self.starts(kind) != []
        shape = self.word if _KINDS[kind][0] == "word" else self.number
        return shape is None or any(p.search(shape) is not None for p in _KINDS[kind][1])

    def starts(self, kind: str) -> list[int] | None:
        """Every text position where a match of ``kind`` can start, in order (a superset);
        None when unknown (a text that is not ASCII), and the whole text must be searched."""
        if kind in self._starts:
            return self._starts[kind]
        found: list[int] | None = None
        field, patterns, deltas = _KINDS[kind]
        shape = self.word if field == "word" else self.number
        if self.ascii and shape is not None:
            found = _positions(shape, patterns, deltas)
        self._starts[kind] = found
        return found


def _positions(
    shape: bytes, patterns: tuple[re.Pattern[bytes], ...], deltas: tuple[int, ...]
) -> list[int] | None:
    """Text positions named by the shape patterns' matches, or None past :data:`MAX_STARTS`."""
    positions: set[int] = set()
    for pattern in patterns:
        for m in pattern.finditer(shape):
            positions.update(m.start() + d for d in deltas)
            if len(positions) > MAX_STARTS:
                return None
    return sorted(p for p in positions if p >= 0)


def matches(
    pattern: re.Pattern[str], text: str, starts: list[int] | None, budget: ScanBudget | None = None
) -> Iterator[re.Match[str]]:
    """``pattern.finditer(text)``, trying only ``starts`` when they are known.

    Each match spends one from ``budget`` (raising :class:`ScanBudgetExceeded` past it).

    The same matches as long as ``starts`` holds every position where ``pattern.match``
    succeeds: finditer takes the first such position at or after the previous match's end.
    ``pattern.match(text, pos)`` sees the text before ``pos``, so lookbehinds read the same.
    """
    if starts is None:
        found: Iterator[re.Match[str]] = pattern.finditer(text)
    else:
        found = _matches_at(pattern, text, starts)
    for m in found:
        if budget is not None:
            budget.spend()
        yield m


def _matches_at(pattern: re.Pattern[str], text: str, starts: list[int]) -> Iterator[re.Match[str]]:
    end = 0
    for start in starts:
        if start >= end and (m := pattern.match(text, start)) is not None:
            # The detectors' patterns never match empty text.
            end = m.end()
            yield m


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


def tenant_pattern_possible(shape: TextShape, pattern: re.Pattern[str]) -> bool:
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
