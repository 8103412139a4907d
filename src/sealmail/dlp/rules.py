"""Tenant DLP policy and the pure scan that turns text parts into a verdict.

``scan(parts, policy)`` runs every detector over every part and maps what fired to the most
severe configured :class:`Action`.  The verdict records *which* detector fired, *where* (a part
location such as ``subject`` or ``attachment[0]``) and *how often* — never the matched value,
so a verdict can be stored, audited, logged and shown in an SMTP reply or API error as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from sealmail.dlp.detectors import (
    BUILTIN_NAMES,
    Detector,
    TenantPatternError,
    build_detectors,
    compile_tenant_pattern,
)
from sealmail.dlp.prefilter import ScanBudget, ScanBudgetExceeded, TextShape
from sealmail.domain.secureline import DlpAction

# Each part is scanned up to this many characters; a longer part is scanned in part and its
# location reported as not fully scanned.  It bounds the cost of one message (the detectors
# are linear, so 2 M characters take tens of milliseconds per detector).
MAX_PART_CHARS = 2_000_000
# One message is scanned up to this many characters in all its parts (a DOCX of 100 parts
# holds 200 M characters in a few kilobytes); the parts past it are reported unscanned.
MAX_MESSAGE_CHARS = 8_000_000
# Every detector match is a candidate that costs a context check (microseconds each); one
# message's scan examines at most this many, in all parts and detectors together, so a text
# made of candidates ("phone 555-123-4567 ..." took 5 s per 2 M part, a minute per message)
# costs under a second.
# A scan that runs out reports the part it was in, and every later one, as not scanned.
MAX_CANDIDATES = 10_000
MAX_KEYWORDS = 1000
MAX_KEYWORD_LENGTH = 100
MAX_MRN_PATTERNS = 20


# The one enum of DLP actions lives in the domain (SecureLine decides on it too).
Action = DlpAction


class DlpPolicyError(ValueError):
    """A tenant DLP policy is invalid; the message names the setting and how to fix it."""


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text taken from one place in a message.

    ``location`` is ``subject``, ``text``, ``html``, ``attachment[0]:report.pdf``,
    ``filename[0]`` ...; anything after the first ``:`` (a file name, which may itself carry
    PHI such as "jane_doe_hiv.pdf") is dropped from findings and reasons.
    """

    location: str
    text: str = field(repr=False)


def public_location(location: str) -> str:
    """The location without a file name: ``attachment[0]:report.pdf`` -> ``attachment[0]``."""
    return location.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Finding:
    """A detector fired ``count`` times in one location.  Deliberately holds no value."""

    detector: str
    location: str
    count: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a scan: findings, the action they call for and a safe reason."""

    findings: tuple[Finding, ...]
    action: Action
    reason: str
    unscanned: tuple[str, ...] = ()

    @property
    def phi_found(self) -> bool:
        return bool(self.findings)

    @property
    def detectors(self) -> frozenset[str]:
        return frozenset(f.detector for f in self.findings)


@dataclass(frozen=True)
class DlpPolicy:
    """One tenant's DLP configuration; validated on construction.

    * ``mrn_patterns``: the tenant's medical-record-number regexes (see
      :func:`sealmail.dlp.detectors.compile_tenant_pattern` for the accepted shape).
    * ``keywords``: words or phrases that always count (detector ``keyword``).
    * ``actions``: detector name -> action; detectors not listed use ``default_action``.
    * ``thresholds``: detector name -> how many matches across the message before it fires
      (default 1); e.g. ``{"phone_in_context": 2}``.
    * ``unscanned_action``: for parts that could not be read (encrypted PDF, image, archive).
    """

    mrn_patterns: Sequence[str] = ()
    keywords: Sequence[str] = ()
    actions: Mapping[str, Action] = field(default_factory=dict)
    default_action: Action = Action.REQUIRE_ENCRYPTION
    thresholds: Mapping[str, int] = field(default_factory=dict)
    unscanned_action: Action = Action.REQUIRE_ENCRYPTION
    _detectors: tuple[Detector, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.mrn_patterns) > MAX_MRN_PATTERNS:
            raise DlpPolicyError(f"mrn_patterns: at most {MAX_MRN_PATTERNS} patterns")
        compiled: list[re.Pattern[str]] = []
        for index, pattern in enumerate(self.mrn_patterns):
            try:
                compiled.append(compile_tenant_pattern(pattern))
            except TenantPatternError as exc:
                raise DlpPolicyError(f"mrn_patterns[{index}]: {exc}") from None
        if len(self.keywords) > MAX_KEYWORDS:
            raise DlpPolicyError(f"keywords: at most {MAX_KEYWORDS} entries")
        for index, keyword in enumerate(self.keywords):
            if not keyword.strip():
                raise DlpPolicyError(f"keywords[{index}]: empty keyword; remove it")
            if len(keyword) > MAX_KEYWORD_LENGTH:
                raise DlpPolicyError(f"keywords[{index}]: longer than {MAX_KEYWORD_LENGTH} characters")
        _check_names("actions", self.actions)
        _check_names("thresholds", self.thresholds)
        # Settings arrive from TOML/JSON as strings; accept them and fail with the valid choices.
        actions = {name: _action(f"actions[{name}]", value) for name, value in self.actions.items()}
        object.__setattr__(self, "default_action", _action("default_action", self.default_action))
        object.__setattr__(self, "unscanned_action", _action("unscanned_action", self.unscanned_action))
        for name, threshold in self.thresholds.items():
            if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
                raise DlpPolicyError(f"thresholds[{name}]: must be a whole number of at least 1")
        object.__setattr__(self, "mrn_patterns", tuple(self.mrn_patterns))
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "actions", MappingProxyType(actions))
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        object.__setattr__(self, "_detectors", build_detectors(compiled, self.keywords))

    @property
    def detectors(self) -> tuple[Detector, ...]:
        return self._detectors

    def action_for(self, detector: str) -> Action:
        return self.actions.get(detector, self.default_action)

    def threshold_for(self, detector: str) -> int:
        return self.thresholds.get(detector, 1)


def _action(setting: str, value: object) -> Action:
    try:
        return Action(str(value))
    except ValueError:
        raise DlpPolicyError(f"{setting}: {value!r} is not one of {[a.value for a in Action]}") from None


def _check_names(setting: str, mapping: Mapping[str, object]) -> None:
    unknown = sorted(set(mapping) - set(BUILTIN_NAMES))
    if unknown:
        raise DlpPolicyError(f"{setting}: unknown detector(s) {unknown}; known: {list(BUILTIN_NAMES)}")


def scan(parts: Sequence[TextPart], policy: DlpPolicy, *, unscanned: Iterable[str] = ()) -> Verdict:
    """Run the policy's detectors over ``parts`` and decide the action.

    ``unscanned`` lists locations the extractor could not read; they raise the action to at
    least ``policy.unscanned_action``.  Parts longer than :data:`MAX_PART_CHARS`, text past
    :data:`MAX_MESSAGE_CHARS` in all, and parts left when :data:`MAX_CANDIDATES` ran out are
    scanned up to the limit and reported as unscanned as well; that text was readable and is
    only too much to scan (a patient list, a report), so it counts as PHI found: at least
    ``policy.default_action``, whatever ``unscanned_action`` says.
    """
    not_scanned = [public_location(loc) for loc in unscanned]
    cut_short = False
    counts: dict[tuple[str, str], int] = {}
    totals: dict[str, int] = {}
    budget = ScanBudget(MAX_CANDIDATES)
    chars_left = MAX_MESSAGE_CHARS
    for part in parts:
        location = public_location(part.location)
        limit = min(MAX_PART_CHARS, chars_left)
        text = part.text[:limit]
        if len(part.text) > limit:
            not_scanned.append(location)
            cut_short = True
        chars_left -= len(text)
        if budget.left < 0:
            not_scanned.append(location)
            cut_short = True
            continue
        try:
            _scan_part(policy.detectors, text, TextShape(text, budget), location, counts, totals)
        except ScanBudgetExceeded:
            not_scanned.append(location)
            cut_short = True

    fired = {name for name, total in totals.items() if total >= policy.threshold_for(name)}
    order = {name: i for i, name in enumerate(BUILTIN_NAMES)}
    findings = tuple(
        Finding(detector, location, count)
        for (detector, location), count in sorted(counts.items(), key=lambda kv: order[kv[0][0]])
        if detector in fired
    )
    not_scanned = list(dict.fromkeys(not_scanned))
    actions = [policy.action_for(name) for name in fired]
    if not_scanned:
        actions.append(policy.unscanned_action)
    if cut_short:
        actions.append(policy.default_action)
    action = max(actions, default=Action.NONE)
    return Verdict(findings, action, _reason(findings, not_scanned), tuple(not_scanned))


def _scan_part(
    detectors: Sequence[Detector],
    text: str,
    shape: TextShape,
    location: str,
    counts: dict[tuple[str, str], int],
    totals: dict[str, int],
) -> None:
    """Add one part's matches to ``counts`` and ``totals`` (ScanBudgetExceeded past the budget)."""
    for detector in detectors:
        # A detector that certainly finds nothing is not run, and the others try their
        # patterns only where a match can start (prefilter.py): the same spans.
        n = _count(detector, text, shape)
        if n:
            key = (detector.name, location)
            counts[key] = counts.get(key, 0) + n
            totals[detector.name] = totals.get(detector.name, 0) + n


def _count(detector: Detector, text: str, shape: TextShape) -> int:
    return sum(1 for _ in detector.spans(text, shape)) if detector.possible(shape) else 0


def _reason(findings: Sequence[Finding], unscanned: Sequence[str]) -> str:
    """ "ssn in text; icd10 in attachment[0]; not scanned: attachment[1]" — names, no values."""
    by_detector: dict[str, list[str]] = {}
    for finding in findings:
        by_detector.setdefault(finding.detector, []).append(finding.location)
    pieces = [f"{name} in {', '.join(locations)}" for name, locations in by_detector.items()]
    if unscanned:
        pieces.append(f"not scanned: {', '.join(unscanned)}")
    return "; ".join(pieces) if pieces else "no PHI detected"
