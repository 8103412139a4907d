"""PHI detectors: small, pure pattern matchers with checksums and context windows.

Size: one file on purpose: it is the detector catalogue, one small matcher per PHI kind
sharing the same checksums and context windows; a reviewer reads the whole vocabulary here.

Each detector has a stable ``name`` (the vocabulary of tenant rules, findings and reports) and
``spans(text)``, which yields the offsets of what it found.  Offsets, never the matched text,
leave this module: a finding must not become a second copy of the PHI it points at
(HIPAA §164.502(b) minimum necessary), so callers count spans and record locations only.

False positives are kept low by three means, in this order:

* **Checksums** where the identifier has one: NPI (Luhn over ``80840`` + NPI), DEA (registrant
  check digit), and the SSA's never-issued SSN ranges.
* **Structure** from the issuing body's specification: CMS MBI character positions, the
  ICD-10-CM code shape.
* **Context windows**: a label or clinical word in a short window before (or around) the match.
  Dates are only dates of birth after "DOB"/"born"; a phone number is only PHI after a patient
  label and not after "our front desk".

Every pattern here is linear-time for Python's backtracking engine: no nested or unbounded
quantifiers over overlapping classes, and context regexes only ever run on bounded windows.
Tenant MRN regexes pass :func:`compile_tenant_pattern`, which enforces the same discipline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from sealmail.dlp.prefilter import POSITIONED, ScanBudget, TextShape, matches, tenant_pattern_possible


class Span(NamedTuple):
    """Where a detector matched, as offsets into the scanned text (no text is kept)."""

    start: int
    end: int


class Detector(Protocol):
    """A PHI detector: a stable name and the spans it finds in a text.

    ``possible(shape)`` is False only when the detector certainly finds nothing in
    ``shape.text``; ``spans(text, shape)`` uses the shape to try its patterns only where a
    match can start (see :mod:`sealmail.dlp.prefilter`).  Without a shape, ``spans`` searches
    the whole text: the same spans, more slowly.
    """

    @property
    def name(self) -> str: ...

    def possible(self, shape: TextShape) -> bool: ...

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]: ...


_I = re.IGNORECASE


def _before(text: str, start: int, width: int) -> str:
    return text[max(0, start - width) : start]


def _around(text: str, start: int, end: int, width: int) -> str:
    return text[max(0, start - width) : end + width]


def _starts(shape: TextShape | None, kind: str) -> list[int] | None:
    return None if shape is None else shape.starts(kind)


def _budget(shape: TextShape | None) -> ScanBudget | None:
    return None if shape is None else shape.budget


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    """Cheap gate: does the text contain any of these (lower-case) substrings at all?

    Substring tests run at memory speed, unlike case-insensitive alternations, so a detector
    whose evidence is a label skips texts that never mention one.
    """
    lowered = text.lower()
    return any(word in lowered for word in words)


# ---------------------------------------------------------------------------------------------
# Checksums and structural validators (public so tests and other adapters can reuse them)
# ---------------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """ISO/IEC 7812-1 Luhn check over a string of ASCII digits (last digit is the check)."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def npi_valid(npi: str) -> bool:
    """CMS NPI check digit: Luhn over the 10 digits prefixed with ``80840``.

    CMS, "Requirements for the NPI check digit" (NPPES): the NPI is a 9-digit identifier plus a
    Luhn check digit computed as if the number were the ISO 7812 card issuer identifier
    ``80840`` + NPI (equivalently: add the constant 24 to the doubled-digit sum).  NPIs start
    with 1 or 2.
    """
    return len(npi) == 10 and npi.isascii() and npi.isdigit() and npi[0] in "12" and luhn_valid("80840" + npi)


def dea_valid(dea: str) -> bool:
    """DEA registration number check digit (21 CFR 1301; DEA Diversion Control guidance).

    Two letters then seven digits d1..d7: ``(d1 + d3 + d5) + 2 * (d2 + d4 + d6)``; its last
    digit must equal d7.
    """
    if len(dea) != 9 or not dea[2:].isascii() or not dea[2:].isdigit():
        return False
    d = [ord(c) - 48 for c in dea[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


# SSA: these numbers were published in advertising or by the SSA itself and are invalid as
# anyone's SSN (078-05-1120 "Woolworth wallet card", 219-09-9999 SSA pamphlet); 123-45-6789 is
# the universal placeholder.  Treating them as PHI would flag every form template.
_FAKE_SSNS = frozenset({"078051120", "219099999", "123456789", "987654321"})


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Whether an SSN could have been issued (SSA, "Social Security Number Randomization", 2011).

    Never issued: area 000, 666 and 900-999 (the 9xx range is ITINs); group 00; serial 0000.
    Also rejected: the well-known published fakes and numbers of one repeated digit.
    """
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    joined = area + group + serial
    return joined not in _FAKE_SSNS and len(set(joined)) > 1


# CMS, "Medicare Beneficiary Identifier (MBI) format specifications" (2016-2018): 11 characters;
# position 1 numeric 1-9; 2, 5, 8, 9 alphabetic; 3 and 6 alphanumeric; 4, 7, 10, 11 numeric.
# Letters S, L, O, I, B and Z are never used (they read as digits).
_MBI_ALPHA = "[AC-HJKMNP-RT-Y]"
_MBI_ALNUM = "[0-9AC-HJKMNP-RT-Y]"


def mbi_valid(mbi: str) -> bool:
    """Whether an 11-character string (dashes removed) follows the CMS MBI position rules."""
    return _MBI_FULL.fullmatch(mbi) is not None


_MBI_FULL = re.compile(
    f"[1-9]{_MBI_ALPHA}{_MBI_ALNUM}[0-9]{_MBI_ALPHA}{_MBI_ALNUM}[0-9]{_MBI_ALPHA}{_MBI_ALPHA}[0-9][0-9]"
)


def icd10cm_plausible(code: str) -> bool:
    """Whether a code has the ICD-10-CM shape (CMS/NCHS ICD-10-CM Official Guidelines, §I.A).

    A category is a letter, a digit and a digit-or-letter (letters occur only as A/B, e.g. C4A,
    M1A, Z3A), optionally followed by a dot and 1-4 characters (subcategory, then the 7th
    character extension with ``X`` placeholders).  Chapter U is reserved by WHO for provisional
    use; ICD-10-CM only has U07.0 (vaping), U07.1 (COVID-19) and U09.9 (post-COVID).
    """
    match = _ICD_FULL.fullmatch(code)
    if match is None:
        return False
    category, _, sub = code.partition(".")
    if category[0] == "U":
        return code in ("U07.0", "U07.1", "U09.9")
    return not sub or sub[0] != "X" or len(sub) > 1


_ICD_FULL = re.compile(r"[A-Z][0-9][0-9AB](?:\.[0-9A-Z]{1,4})?")


# ---------------------------------------------------------------------------------------------
# Built-in detectors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SsnDetector:
    """US Social Security numbers.

    ``123-45-6789`` (dashes) is distinctive enough alone; space-separated or bare 9 digits need
    an SSN label before them, since 9-digit numbers (ZIP+4, routing, order numbers) are common.
    """

    name: str = "ssn"

    def possible(self, shape: TextShape) -> bool:
        return shape.possible("ssn")

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for m in matches(_SSN, text, _starts(shape, "ssn"), _budget(shape)):
            if not ssn_valid(m["area"], m["group"], m["serial"]):
                continue
            before = _before(text, m.start(), 40)
            labelled = _SSN_CONTEXT.search(before) is not None
            if m["sep"] == "-" and (labelled or _ID_NOISE.search(_before(text, m.start(), 24)) is None):
                yield Span(*m.span())
            elif labelled:
                yield Span(*m.span())


_SSN = re.compile(
    r"(?P<area>\d(?<![\w-]\d)\d{2})(?P<sep>[- ]?)(?P<group>\d{2})(?P=sep)(?P<serial>\d{4})(?![\w-])"
)
_SSN_CONTEXT = re.compile(r"\b(?:SSN|SS#|SS\s?No|soc(?:ial)?\.?\s+sec(?:urity)?|SSA)\b|\bsocial\s?[:#]", _I)
# Words that introduce catalogue or order identifiers; a dashed 3-2-4 after them is not an SSN.
_ID_NOISE = re.compile(
    r"\b(?:part|sku|item|model|order|invoice|inv|ref|reference|serial|ticket|case|tracking|"
    r"confirmation|po|lot|catalog(?:ue)?|cat|stock|product|build|account\s+code)\b[^\n]{0,12}$",
    _I,
)


@dataclass(frozen=True, slots=True)
class LabelledIdDetector:
    """An identifier introduced by a label ("MRN: 0048213", "Member ID XKH448120001").

    Used for medical record numbers and health-plan member ids, which have no national format:
    the label is the evidence, and the value must hold at least four digits so that "Member ID:
    see card" is not a finding.
    """

    name: str
    label: re.Pattern[str]
    gate: tuple[str, ...]
    # Lower case: every match of ``label`` starts with one of these (case-insensitive).
    first: tuple[str, ...]

    def possible(self, shape: TextShape) -> bool:
        # The id after the label holds at least four digits.
        return shape.digits_at_least(4) and shape.mentions(self.gate)

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        if not _mentions(text, self.gate):
            return
        starts = None if shape is None else shape.word_starts(self.first)
        for m in matches(self.label, text, starts, _budget(shape)):
            token = m["id"]
            if sum(c.isdigit() for c in token) >= 4:
                yield Span(m.start("id"), m.end("id"))


def _label_then_id(first: str, labels: str) -> re.Pattern[str]:
    # The separator is bounded ({0,4}) so the pattern stays linear on long runs of blanks.
    # The leading class of first letters lets re skip ahead instead of trying every position.
    return re.compile(
        # "Member ID on the card: X" - a short phrase may sit between label and colon.
        rf"(?=[{first}])\b(?:{labels})(?:[ \t][A-Za-z ]{{1,20}}:)?"
        r"[ \t]{0,4}[:#.]?[ \t]{0,4}(?:is[ \t]{1,4})?"
        r"(?P<id>[A-Z0-9][A-Z0-9-]{3,24})\b",
        _I,
    )


_MRN_LABELS = _label_then_id(
    "mcp",
    r"MRN|MR#|MR\s?No\.?|med(?:ical)?\s+rec(?:ord)?(?:\s+(?:number|no\.?|num|#))?|"
    r"chart\s+(?:number|no\.?|#|id)|patient\s+(?:id|number|no\.?|#|acct)|pt\s+(?:id|#)",
)
MRN_GATE = ("mr", "med", "chart", "patient", "pt")
MEMBER_GATE = (
    "member",
    "subscriber",
    "enrollee",
    "insured",
    "beneficiary",
    "medicaid",
    "policy",
    "insurance",
    "plan",
)
# "health plan" starts with a word the gate does not need.
_MEMBER_FIRST = (*MEMBER_GATE, "health")
_MEMBER_LABELS = _label_then_id(
    "mseibph",
    r"(?:member|subscriber|enrollee|insured|beneficiary|medicaid|policy(?:holder)?|insurance|"
    r"health\s+plan|plan\s+member)\s+(?:id(?:entification)?|number|no\.?|#)(?:\s+(?:number|no\.?|#))?",
)

_MRN = LabelledIdDetector("mrn", _MRN_LABELS, MRN_GATE, MRN_GATE)
_MEMBER = LabelledIdDetector("member_id", _MEMBER_LABELS, MEMBER_GATE, _MEMBER_FIRST)


@dataclass(frozen=True, slots=True)
class PatternDetector:
    """Tenant-supplied patterns, already vetted by :func:`compile_tenant_pattern`."""

    name: str
    patterns: tuple[re.Pattern[str], ...]

    def possible(self, shape: TextShape) -> bool:
        return any(tenant_pattern_possible(shape, pattern) for pattern in self.patterns)

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for pattern in self.patterns:
            for m in matches(pattern, text, None, _budget(shape)):
                yield Span(*m.span())


@dataclass(frozen=True, slots=True)
class MrnDetector:
    """Medical record numbers: labelled ones, plus the tenant's own formats."""

    tenant_patterns: tuple[re.Pattern[str], ...] = ()
    name: str = "mrn"

    def possible(self, shape: TextShape) -> bool:
        return _MRN.possible(shape) or PatternDetector("mrn", self.tenant_patterns).possible(shape)

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        seen: set[Span] = set()
        for span in _MRN.spans(text, shape):
            seen.add(span)
            yield span
        for span in PatternDetector("mrn", self.tenant_patterns).spans(text):
            # A labelled MRN in the tenant's format is one finding, not two.
            if not any(s.start <= span.start < s.end or span.start <= s.start < span.end for s in seen):
                yield span


_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATES = re.compile(
    r"(?<![\w/.-])(?:"
    r"(?P<a>\d{1,2})(?P<s>[/.-])(?P<b>\d{1,2})(?P=s)(?P<y>\d{4}|\d{2})"
    r"|(?P<iy>(?:19|20)\d{2})-(?P<im>\d{2})-(?P<id>\d{2})"
    rf"|{_MONTHS}\.?[ \t]{{1,3}}(?P<td>\d{{1,2}})(?:st|nd|rd|th)?,?[ \t]{{1,3}}(?P<ty>(?:19|20)\d{{2}})"
    rf"|(?P<dt>\d{{1,2}})(?:st|nd|rd|th)?[ \t]{{1,3}}(?:of[ \t]{{1,3}})?{_MONTHS}\.?,?[ \t]{{1,3}}"
    r"(?P<yt>(?:19|20)\d{2})"
    r")(?![\w/-]|\.\d)",
    _I,
)
_LONGEST_DATE = len("September 30th, 2024")
DOB_GATE = ("dob", "d.o.b", "birth", "born")
_DOB_FIRST = (*DOB_GATE, "date")
_DOB_CONTEXT = re.compile(r"(?=[db])\b(?:DOB|D\.O\.B|date\s+of\s+birth|birth\s?date|born)\b", _I)


def _plausible_date(m: re.Match[str]) -> bool:
    if m["a"] is not None:
        a, b = int(m["a"]), int(m["b"])
        # US m/d/y is the norm, but d/m/y occurs in referrals from abroad; accept either.
        return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)
    if m["iy"] is not None:
        return 1 <= int(m["im"]) <= 12 and 1 <= int(m["id"]) <= 31
    day = m["td"] if m["td"] is not None else m["dt"]
    return 1 <= int(day) <= 31


@dataclass(frozen=True, slots=True)
class DobDetector:
    """Dates of birth: a date (numeric, ISO or spelled month) within 30 characters after
    "DOB", "date of birth", "born" or "birth date".  Other dates are not PHI on their own."""

    name: str = "dob"

    def possible(self, shape: TextShape) -> bool:
        # The label words are rarer than dates: asked first.
        return shape.mentions(DOB_GATE) and shape.possible("date")

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        if not _mentions(text, DOB_GATE):
            return
        # Label-driven: only the first date within 30 characters after a label counts, so in
        # "DOB 03/14/1985, seen 04/05/2024" the visit date is not a date of birth.
        found: set[int] = set()
        starts = None if shape is None else shape.word_starts(_DOB_FIRST)
        for label in matches(_DOB_CONTEXT, text, starts, _budget(shape)):
            m = _DATES.search(text, label.end(), label.end() + 30 + _LONGEST_DATE)
            if m is None or m.start() - label.end() > 30 or m.start() in found or not _plausible_date(m):
                continue
            found.add(m.start())
            yield Span(*m.span())


# ICD matches start at the code's first *digit* (rare in prose, unlike letters) and look back
# for the letter; the code therefore begins one character before the match.
_ICD = re.compile(
    r"[0-9](?<=[A-Z][0-9])(?<![\w.\-/][A-Z][0-9])[0-9AB](?:\.[0-9A-Z]{1,4})?(?![\w\-/]|\.\w)", _I
)
# Codes are upper case; a lower-case one ("dx k21.9") counts only right after a coding label.
_ICD_LABEL = re.compile(r"\b(?:icd(?:-?10)?(?:-?cm)?|dx|diagnosis)(?:\s{1,2}codes?)?\s{0,2}[:#]?\s{0,2}$", _I)
# Coding labels: enough on their own, even for a bare category such as "I10".
_CODING_CONTEXT = re.compile(
    r"\b(?:ICD|ICD-?10(?:-?CM)?|icd10|dx|ddx|diagnos\w*|assessment|impression|problem\s+list|"
    r"coded|superbill|claim\s+line)\b",
    _I,
)
# Clinical words: enough for a dotted code ("E78.5"), whose shape is already code-like.  Medical
# suffixes (-emia, -itis, -osis, ...) catch the long tail of diagnoses without listing them.
_CLINICAL_CONTEXT = re.compile(
    r"\b(?:hx|history\s+of|comorbid\w*|condition|patient|pt|chart|encounter|referral|clinical|"
    r"DOB|MRN|reason\s+for\s+visit|reason|symptoms?|pain|"
    r"diabetes|mellitus|hypertension|asthma|copd|depress\w*|anxiety|fracture|infection|"
    r"disorder|syndrome|neoplasm|carcinoma|malignan\w*|pregnan\w*|injury|screening)\b|"
    r"\b\w{2,24}(?:emia|itis|osis|pathy|algia|plasia|penia|uria|thyroid\w{0,6})\b",
    _I,
)
# A code-shaped token right after one of these is a room, a vitamin or a catalogue entry.
_ICD_NOT_AFTER = re.compile(
    r"\b(?:vitamin|vit|suite|ste|room|rm|unit|apt|floor|fl|bldg|building|gate|model|part|"
    r"version|ver|row|seat|lot|bay|pod|wing|level|hall|bed|flight|route|sku|item|no|error|"
    r"error\s+code|fault|err)"
    r"\.?[ \t]{0,2}#?[ \t]{0,2}$",
    _I,
)


@dataclass(frozen=True, slots=True)
class Icd10Detector:
    """ICD-10-CM diagnosis codes in a clinical context.

    The code shape alone matches part numbers ("A01.2 hinge"), rooms ("Suite B10") and
    versions, so context within 60 characters either side is required: a coding label ("Dx",
    "ICD-10", "assessment") for any code, or a clinical word for a dotted code.
    """

    name: str = "icd10"

    def possible(self, shape: TextShape) -> bool:
        return shape.possible("icd10")

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for m in matches(_ICD, text, _starts(shape, "icd10"), _budget(shape)):
            start = m.start() - 1
            code = text[start : m.end()]
            if not icd10cm_plausible(code.upper()):
                continue
            if not code.isupper() and _ICD_LABEL.search(_before(text, start, 20)) is None:
                continue
            if _ICD_NOT_AFTER.search(_before(text, start, 16)) is not None:
                continue
            window = _around(text, start, m.end(), 60)
            if _CODING_CONTEXT.search(window) is not None or (
                "." in code and _CLINICAL_CONTEXT.search(window) is not None
            ):
                yield Span(start, m.end())


# Patterns start with a character class and put their lookbehind after it: Python's re only
# skips ahead quickly when a pattern begins with a literal or a class.
_NPI = re.compile(r"[12](?<![\w-][12])\d{9}(?![\w-])")
_NPI_CONTEXT = re.compile(
    r"\b(?:NPI|national\s+provider|provider\s+(?:id|number|no|#)|prescriber|prescribing|"
    r"rendering|referring|billing\s+provider|attending|ordering\s+provider)\b",
    _I,
)


@dataclass(frozen=True, slots=True)
class NpiDetector:
    """National Provider Identifiers: Luhn-valid (see :func:`npi_valid`) and labelled.

    One random 10-digit number in ten passes the check, so a provider label must be near.
    """

    name: str = "npi"

    def possible(self, shape: TextShape) -> bool:
        return shape.possible("npi")

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for m in matches(_NPI, text, _starts(shape, "npi"), _budget(shape)):
            if npi_valid(m[0]) and _NPI_CONTEXT.search(_around(text, m.start(), m.end(), 50)) is not None:
                yield Span(*m.span())


# DEA registrant type letters (DEA Diversion Control: A/B/F/G practitioners, M mid-level,
# P/R distributors, X for DATA-waived prescribers, ...); the second letter is the initial of the
# registrant's surname or 9 for business names.
_DEA = re.compile(r"[ABCDEFGHJKLMPRSTUX](?<![\w-][A-Z])[A-Z9]\d{7}(?![\w-])")
_DEA_CONTEXT = re.compile(
    r"\b(?:DEA|prescriber|prescribing|registration|controlled\s+substances?|schedule\s+(?:II|2|III|IV)|"
    r"rx|prescription)\b",
    _I,
)


@dataclass(frozen=True, slots=True)
class DeaDetector:
    """DEA registration numbers with a valid check digit and a prescribing context."""

    name: str = "dea"

    def possible(self, shape: TextShape) -> bool:
        return shape.possible("dea")

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for m in matches(_DEA, text, _starts(shape, "dea"), _budget(shape)):
            if dea_valid(m[0]) and _DEA_CONTEXT.search(_around(text, m.start(), m.end(), 50)) is not None:
                yield Span(*m.span())


_MBI = re.compile(
    rf"[1-9](?<![\w-][1-9]){_MBI_ALPHA}{_MBI_ALNUM}[0-9](?P<sep>-?){_MBI_ALPHA}{_MBI_ALNUM}[0-9](?P=sep)"
    rf"{_MBI_ALPHA}{_MBI_ALPHA}[0-9][0-9](?![\w-])"
)
_MBI_CONTEXT = re.compile(r"\b(?:medicare|MBI|beneficiary|HICN|CMS)\b", _I)


@dataclass(frozen=True, slots=True)
class MbiDetector:
    """Medicare Beneficiary Identifiers (CMS position rules, see :func:`mbi_valid`).

    The card form ``1EG4-TE5-MK73`` stands alone; the bare 11 characters need a Medicare label
    because generated order ids occasionally fit the position rules.
    """

    name: str = "mbi"

    def possible(self, shape: TextShape) -> bool:
        return shape.possible("mbi")

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for m in matches(_MBI, text, _starts(shape, "mbi"), _budget(shape)):
            if m["sep"] or _MBI_CONTEXT.search(_around(text, m.start(), m.end(), 60)) is not None:
                yield Span(*m.span())


@dataclass(frozen=True, slots=True)
class MemberIdDetector:
    """Health-plan member ids: no national format, so the label is the evidence."""

    name: str = "member_id"

    def possible(self, shape: TextShape) -> bool:
        return _MEMBER.possible(shape)

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        return _MEMBER.spans(text, shape)


# Patient-context machinery shared by phone and address detectors.  A value is the patient's
# when a patient label precedes it closely and no organisation marker ("our front desk",
# "visit us at") sits between; a generic label ("Phone:", "Address:") counts only when the
# surrounding record is about a patient (DOB, MRN, "patient", ...).
_PATIENT_WORDS = (
    r"patient|pt|client|resident|guardian|parent|mother|father|mom|dad|spouse|wife|"
    r"husband|son|daughter|caregiver|next\s+of\s+kin|emergency\s+contact|his|her|their"
)
_ORG_MARKER = re.compile(
    r"\b(?:our|us|we|office|front\s+desk|clinic|hospital|pharmacy|practice|scheduling|"
    r"appointments?\s+line|call\s+center|helpline|hotline|toll[- ]free|fax|main\s+line|"
    r"billing\s+department|customer\s+service|services|located|directions|parking|headquarters|campus|"
    r"remit|payments?\s+to|department|lab|center|pager|paging|on-call)\b",
    _I,
)
_PATIENT_RECORD = re.compile(
    r"\b(?:patient|pt|DOB|date\s+of\s+birth|MRN|member\s+id|guardian|emergency\s+contact|"
    r"next\s+of\s+kin|resident)\b",
    _I,
)


@dataclass(frozen=True, slots=True)
class InPatientContextDetector:
    """A value (phone, address) that is PHI only when it belongs to a patient."""

    name: str
    # Each value pattern with the prefilter kind that says where it can start (None: anywhere).
    values: tuple[tuple[re.Pattern[str], str | None], ...]
    specific: re.Pattern[str]
    generic: re.Pattern[str]

    def possible(self, shape: TextShape) -> bool:
        return any(_value_possible(kind, shape) for _, kind in self.values)

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        for value, kind in self.values:
            starts = _starts(shape, kind) if kind in POSITIONED else None
            yield from self._spans(matches(value, text, starts, _budget(shape)), text)

    def _spans(self, found: Iterator[re.Match[str]], text: str) -> Iterator[Span]:
        for m in found:
            before = _before(text, m.start(), 50)
            label = self.specific.search(before)
            if label is None:
                generic = self.generic.search(before)
                if generic is None or _PATIENT_RECORD.search(_around(text, m.start(), m.end(), 200)) is None:
                    continue
                label = generic
            # Look a few characters before the label too: "Our mailing address" is the clinic's.
            if _ORG_MARKER.search(before[max(0, label.start() - 12) :]) is None:
                yield Span(*m.span())


# NANP shape (area code 2-9xx).  The exchange is not held to 2-9xx: people write made-up or
# mistyped numbers too, and the patient context, not the digits, is the evidence here.
# Each alternative starts with its first character and checks the boundary after it, so re
# can skip ahead to candidate characters (see the note above _ICD).
_AREA = r"(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[-. ]?)"
_PHONE = re.compile(
    rf"(?:\+(?<![\w-]\+)1[-. ]?{_AREA}|1(?<![\w-]1)[-. ]?{_AREA}|\((?<![\w-]\()[2-9]\d{{2}}\)[ ]?"
    r"|[2-9](?<![\w-][2-9])\d{2}[-. ]?)\d{3}[-. ]?\d{4}(?![\w-]|\.\d)"
)
_PHONE_SPECIFIC = re.compile(
    rf"\b(?:{_PATIENT_WORDS})(?:'s)?\b[^\n]{{0,30}}?\b(?:phone|tel|telephone|cell|mobile|contact|"
    r"number|reached)\b|\b(?:home|cell|mobile|personal)\s+(?:phone|number|#)|"
    r"\bphone\s+on\s+file\b|\bcallback\s+number\b|"
    rf"\b(?:call|called|contact|reach|text)\s+(?:the\s+)?(?:{_PATIENT_WORDS})\b",
    _I,
)
_PHONE_GENERIC = re.compile(r"\b(?:phone|tel|telephone|cell|mobile|contact)\b", _I)

_STREET = re.compile(
    r"\d(?<![\w-]\d)\d{0,5}[A-Z]?[ \t]{1,2}(?:[NSEW]\.?[ \t]{1,2})?"
    r"(?:(?:[A-Z][a-z]+|\d{1,3}(?:st|nd|rd|th))\.?[ \t]{1,2}){1,3}"
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|"
    r"Terrace|Ter|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Trail|Trl|Square|Sq)\b\.?"
)
_PO_BOX = re.compile(r"P(?<!\wP)\.?[ \t]?O\.?[ \t]{0,2}Box[ \t]{1,2}\d{1,6}\b")
_ADDRESS_SPECIFIC = re.compile(
    rf"\b(?:{_PATIENT_WORDS})(?:'s)?\b[^\n]{{0,30}}?\b(?:address|lives|resides|residence|home)\b|"
    r"\b(?:home|mailing|residential|street)\s+address\b|\baddress\s+(?:on\s+file|of\s+record)\b|"
    r"\b(?:lives|living|resides|residing|reside|staying)\s+at\b",
    _I,
)
_ADDRESS_GENERIC = re.compile(r"\baddress\b|\baddr\b", _I)


def _value_possible(kind: str | None, shape: TextShape) -> bool:
    if kind == "po_box":
        return "Box" in shape.text  # the pattern's one literal word
    return kind is None or shape.possible(kind)


def phone_in_context() -> InPatientContextDetector:
    return InPatientContextDetector("phone_in_context", ((_PHONE, "phone"),), _PHONE_SPECIFIC, _PHONE_GENERIC)


def address_in_context() -> InPatientContextDetector:
    # The P.O. Box pattern starts with a literal "P", which re already skips to quickly.
    return InPatientContextDetector(
        "address_in_context", ((_STREET, "street"), (_PO_BOX, "po_box")), _ADDRESS_SPECIFIC, _ADDRESS_GENERIC
    )


@dataclass(frozen=True, slots=True)
class KeywordDetector:
    """Tenant keywords and phrases, case-insensitive, on word boundaries ("HIV", "oncology")."""

    pattern: re.Pattern[str] | None
    gate: tuple[str, ...] = ()
    name: str = "keyword"

    @classmethod
    def of(cls, keywords: Iterable[str]) -> KeywordDetector:
        words = sorted({k.strip() for k in keywords if k.strip()}, key=len, reverse=True)
        if not words:
            return cls(None)
        # Longest first so "HIV positive" wins over "HIV"; re.escape makes each a literal,
        # so the alternation costs O(len(text) * len(words)) at worst, never exponential.
        pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)", _I)
        return cls(pattern, tuple(w.lower() for w in words))

    def possible(self, shape: TextShape) -> bool:
        return self.pattern is not None and shape.mentions(self.gate)

    def spans(self, text: str, shape: TextShape | None = None) -> Iterator[Span]:
        if self.pattern is not None and _mentions(text, self.gate):
            for m in matches(self.pattern, text, None, _budget(shape)):
                yield Span(*m.span())


BUILTIN_NAMES: tuple[str, ...] = (
    "ssn",
    "mrn",
    "dob",
    "icd10",
    "npi",
    "dea",
    "mbi",
    "member_id",
    "phone_in_context",
    "address_in_context",
    "keyword",
)


def build_detectors(
    mrn_patterns: Sequence[re.Pattern[str]] = (), keywords: Iterable[str] = ()
) -> tuple[Detector, ...]:
    """Every detector, in :data:`BUILTIN_NAMES` order, configured for one tenant."""
    return (
        SsnDetector(),
        MrnDetector(tuple(mrn_patterns)),
        DobDetector(),
        Icd10Detector(),
        NpiDetector(),
        DeaDetector(),
        MbiDetector(),
        MemberIdDetector(),
        phone_in_context(),
        address_in_context(),
        KeywordDetector.of(keywords),
    )


def count_all(text: str, detectors: Iterable[Detector]) -> dict[str, int]:
    """How many spans each detector found in ``text`` (zero counts omitted)."""
    counts: dict[str, int] = {}
    for detector in detectors:
        n = sum(1 for _ in detector.spans(text))
        if n:
            counts[detector.name] = counts.get(detector.name, 0) + n
    return counts


# ---------------------------------------------------------------------------------------------
# Tenant patterns: ReDoS-safe by construction
# ---------------------------------------------------------------------------------------------

MAX_TENANT_PATTERN_LENGTH = 200
MAX_REPEAT = 64
# Upper bound on the ways one start position can be matched (product of the choices of every
# variable repeat and alternation).  With it, a scan costs at most this factor times the text
# length; "[A-Z]{2,3}-?\d{6,10}" costs 2 * 2 * 5 = 20.
MAX_PATTERN_COST = 1000

_GROUP_PREFIX = re.compile(r"\(\?(?::|P<\w+>|=|!|<=|<!|>|[aiLmsux]*(?:-[imsx]+)?:)|\(")
_FLAGS_ONLY = re.compile(r"\(\?[aiLmsux]+\)")
_COMMENT = re.compile(r"\(\?#[^)]*\)")
_BRACES = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")


class TenantPatternError(ValueError):
    """A tenant MRN pattern is unusable; the message says why and how to fix it."""


@dataclass(slots=True)
class _Frame:
    branches: list[int]
    current: int = 1


def _quantifier(pattern: str, i: int) -> tuple[int, int, int] | None:
    """(min, max, next index) of a quantifier at ``i``, or None when there is none."""
    if i >= len(pattern):
        return None
    char = pattern[i]
    if char in "*+":
        raise TenantPatternError(
            f"unbounded repeat '{char}' at position {i}; use a bounded repeat such as {{1,{MAX_REPEAT}}}"
        )
    if char == "?":
        low, high, end = 0, 1, i + 1
    elif char == "{" and (m := _BRACES.match(pattern, i)) is not None and (m[1] or m[3]):
        low = int(m[1] or 0)
        if m[2] is None:
            high = low
        elif m[3]:
            high = int(m[3])
        else:
            raise TenantPatternError(f"unbounded repeat at position {i}; give an upper bound")
        end = m.end()
    else:
        return None
    if high > MAX_REPEAT:
        raise TenantPatternError(f"repeat bound {high} at position {i} exceeds {MAX_REPEAT}")
    # Lazy ("?") and possessive ("+", Python 3.11) modifiers do not change the bound.
    if end < len(pattern) and pattern[end] in "?+":
        end += 1
    return low, high, end


def _check_cost(pattern: str) -> None:
    """Reject nested or unbounded quantifiers, backreferences and costly alternations."""
    stack = [_Frame([])]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        atom_cost: int
        if char == "\\":
            if i + 1 < len(pattern) and pattern[i + 1] in "123456789":
                raise TenantPatternError(f"backreference at position {i} is not allowed")
            i, atom_cost = i + 2, 1
        elif char == "[":
            # Skip a character class: a leading "^" and "]" are literal; escapes skip a char.
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            i, atom_cost = j + 1, 1
        elif (m := _FLAGS_ONLY.match(pattern, i)) or (m := _COMMENT.match(pattern, i)):
            i = m.end()
            continue
        elif char == "(":
            if pattern.startswith(("(?P=", "(?("), i):
                raise TenantPatternError(f"backreference or conditional at position {i} is not allowed")
            prefix = _GROUP_PREFIX.match(pattern, i)
            assert prefix is not None  # the plain "(" alternative always matches
            stack.append(_Frame([]))
            i = prefix.end()
            continue
        elif char == ")":
            frame = stack.pop()
            atom_cost = sum([*frame.branches, frame.current])
            i += 1
            quantifier = _quantifier(pattern, i)
            if quantifier is not None and quantifier[:2] != (1, 1) and atom_cost > 1:
                raise TenantPatternError(
                    f"nested quantifier or alternation inside a repeated group ending at position {i - 1}"
                )
        elif char == "|":
            stack[-1].branches.append(stack[-1].current)
            stack[-1].current = 1
            i += 1
            continue
        else:
            i, atom_cost = i + 1, 1
        quantifier = _quantifier(pattern, i)
        if quantifier is not None:
            low, high, i = quantifier
            atom_cost = max(atom_cost, 1) * (high - low + 1)
        stack[-1].current *= atom_cost
        if stack[-1].current > MAX_PATTERN_COST:
            raise TenantPatternError(f"pattern allows too many ways to match (more than {MAX_PATTERN_COST})")
    total = sum([*stack[0].branches, stack[0].current])
    if total > MAX_PATTERN_COST:
        raise TenantPatternError(f"pattern allows too many ways to match (more than {MAX_PATTERN_COST})")


def compile_tenant_pattern(pattern: str) -> re.Pattern[str]:
    """Validate and compile a tenant's MRN regex, or raise :class:`TenantPatternError`.

    Python's ``re`` backtracks and has no timeout, so safety comes from the pattern's shape:
    at most 200 characters, only bounded repeats (max 64), no repeated group containing a
    repeat or alternation, no backreferences, and a bounded number of match paths.  The
    result is anchored on alphanumeric boundaries so ``\\d{7}`` does not fire inside a
    10-digit phone number.
    """
    if not pattern:
        raise TenantPatternError("pattern is empty")
    if len(pattern) > MAX_TENANT_PATTERN_LENGTH:
        raise TenantPatternError(f"pattern is longer than {MAX_TENANT_PATTERN_LENGTH} characters")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise TenantPatternError(f"not a valid regular expression: {exc.msg} at position {exc.pos}") from None
    if compiled.fullmatch("") is not None:
        raise TenantPatternError("pattern matches empty text")
    _check_cost(pattern)
    flags = _FLAGS_ONLY.match(pattern)
    head, body = (pattern[: flags.end()], pattern[flags.end() :]) if flags else ("", pattern)
    return re.compile(rf"{head}(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])")
