"""The scan's pre-filter and fast parse change no finding (differential against the old path).

The old path is every detector over every part (``reference_scan``: ``rules.scan`` with the
pre-filter switched off) and ``email.message_from_bytes`` for every message.  Both are
compared with the new path over the labelled corpus, the corpus under mutations that move
characters across every class the shapes tell apart, and generated identifier-like texts.
"""

from __future__ import annotations

import email
import email.policy
import importlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from email.message import Message
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.dlp.detectors import BUILTIN_NAMES, Detector
from sealmail.dlp.extract import extract, parse
from sealmail.dlp.prefilter import TextShape, literal_prefix
from sealmail.dlp.rules import DlpPolicy, TextPart, Verdict, scan
from sealmail.domain.message import parse_head

# The package exports the function ``extract`` under the module's name.
extract_module = importlib.import_module("sealmail.dlp.extract")
prefilter = importlib.import_module("sealmail.dlp.prefilter")
rules = importlib.import_module("sealmail.dlp.rules")
CORPUS = Path(__file__).resolve().parents[2] / "data" / "dlp_corpus.jsonl"
_LINES = CORPUS.read_text(encoding="utf-8").splitlines()
CORPUS_POLICY = DlpPolicy(**json.loads(_LINES[0])["policy"])
TEXTS = [json.loads(line)["text"] for line in _LINES[1:] if line.strip()]
POLICIES = (
    CORPUS_POLICY,
    DlpPolicy(),
    DlpPolicy(mrn_patterns=[r"(?i)mrn-\d{6}", r"[A-Z]{2}\d{6}", r"AB?C\d{4}"], keywords=["HIV", "ſmith"]),
)

# Characters that sit on the shapes' class edges: digits of every class, separators, letters
# of both cases, non-ASCII letters and punctuation (inert), and non-ASCII characters the
# pattern engine reads as digits or ASCII letters (not inert: no shape, every detector runs).
EDGE = "0123456789-. ()/+:#\t\nAaZzWw_éñ“”—\u00a0ſKİı٣７"
NOISE = [
    "123-45-6789",
    "1EG4-TE5-MK73",
    "(555) 234-0147",
    "+1 555 234 0147",
    "1-555-234-0147",
    "1234567893",
    "AB1234563",
    "E11.9",
    "03/14/1985",
    "1985-03-14",
    "March 14, 1985",
    "14 March 1985",
    "4821 Maple Avenue",
    "P.O. Box 1142",
    "MRN 00482134",
    "Member ID XKH448120001",
    "Health plan number: HP44820016",
    "Date of birth: 03/14/1985",
    "pt # 00482134",
    "SFM0012345",
    "mrn-123456",
]


def reference_scan(parts: Sequence[TextPart], policy: DlpPolicy, *, unscanned: Iterable[str] = ()) -> Verdict:
    """``rules.scan`` with the pre-filter off: every detector over every part (the old path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rules, "_count", lambda detector, text, shape: sum(1 for _ in detector.spans(text)))
        return scan(parts, policy, unscanned=unscanned)


def mutations(text: str, rng: random.Random) -> Iterator[str]:
    yield text
    yield text.upper()
    yield text.lower()
    yield text.swapcase()
    for _ in range(6):
        chars = list(text)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(chars) + 1)
            chars.insert(at, rng.choice(EDGE))
        if chars and rng.random() < 0.5:
            del chars[rng.randrange(len(chars))]
        yield "".join(chars)
    cut = rng.randrange(len(text) + 1)
    yield text[:cut]
    yield text[cut:]


def mutated_corpus() -> list[str]:
    rng = random.Random(18)
    out: list[str] = []
    for text in TEXTS:
        out.extend(mutations(text, rng))
    for _ in range(400):
        pieces = [rng.choice(TEXTS)[: rng.randint(0, 80)], rng.choice(NOISE), rng.choice(TEXTS)[-60:]]
        joiner = rng.choice([" ", "\n", "", ": ", "\t", " é "])
        out.extend(mutations(joiner.join(pieces), rng))
    return out


def assert_same_spans(detector: Detector, text: str) -> bool:
    """The detector with a shape (pre-filter, start positions) finds what it finds without."""
    whole = list(detector.spans(text))
    shape = TextShape(text)
    if whole:
        assert detector.possible(shape), (detector.name, text)
    if detector.possible(shape):
        assert list(detector.spans(text, shape)) == whole, (detector.name, text)
    return bool(whole)


def test_the_prefilter_never_skips_or_moves_a_span() -> None:
    texts = mutated_corpus()
    fired = dict.fromkeys(BUILTIN_NAMES, 0)
    for policy in POLICIES:
        for text in texts:
            for detector in policy.detectors:
                fired[detector.name] += assert_same_spans(detector, text)
    # The corpus exercises every detector, so each condition was checked against real hits.
    assert all(fired.values()), fired


def test_scan_gives_the_same_verdict_as_every_detector_over_every_part() -> None:
    rng = random.Random(5)
    texts = mutated_corpus()
    for policy in POLICIES:
        for _ in range(300):
            parts = [
                TextPart(f"{loc}:name.pdf", rng.choice(texts)) for loc in ("subject", "text", "attachment[0]")
            ]
            assert scan(parts, policy, unscanned=["attachment[1]"]) == reference_scan(
                parts, policy, unscanned=["attachment[1]"]
            )


_IDENTIFIERISH = st.text(
    alphabet=st.sampled_from(EDGE + "mrnMRNdobDOBbornmemberpatientStAveBox"), max_size=60
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_IDENTIFIERISH, st.sampled_from(NOISE), st.sampled_from(TEXTS)), max_size=5))
def test_generated_texts_keep_every_finding(pieces: list[str]) -> None:
    text = " ".join(pieces)
    for policy in POLICIES:
        for detector in policy.detectors:
            assert_same_spans(detector, text)
        assert scan([TextPart("text", text)], policy) == reference_scan([TextPart("text", text)], policy)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"SFM\d{7}", ("SFM", False)),
        (r"(?i)mrn-\d{6}", ("mrn-", True)),
        (r"AB?C\d{4}", ("A", False)),
        (r"A{2}\d", ("", False)),
        (r"MRN|CHART\d{6}", ("", False)),
        (r"(?x)M R N\d{6}", ("", False)),
        (r"[A-Z]{2}\d{6}", ("", False)),
        (r"(?:MRN)\d{6}", ("", False)),
    ],
)
def test_tenant_patterns_are_gated_only_on_the_literal_every_match_starts_with(
    pattern: str, expected: tuple[str, bool]
) -> None:
    wrapped = DlpPolicy(mrn_patterns=[pattern]).detectors[1]
    assert literal_prefix(wrapped.tenant_patterns[0].pattern) == expected  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------- parse

MESSAGES = [
    b"From: a@example.test\r\nSubject: hi\r\n\r\nMRN 00482134\r\n",
    b"From: a@example.test\nSubject: LF only\n\nDOB 03/14/1985\n",
    b"From: a@example.test\r\nSubject: no body\r\n",
    b"From: a@example.test\r\nSubject: bare\rCR\r\n\r\nbody\r\n",
    b"From: a@example.test\r\nnot a header line\r\nSubject: x\r\n\r\nbody\r\n",
    b"From: a@example.test\r\n\tfolded start\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n",
    b"From: a@example.test\r\nContent-Type: text/plain; charset=latin-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 SSN 219-09-9998\r\n",
    b"From: a@example.test\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"PHA+UGF0aWVudCBNUk46IDAwNDgyMTM0PC9wPg==\r\n",
    b"From: a@example.test\r\nContent-Type: application/octet-stream\r\n"
    b'Content-Disposition: attachment; filename="jane doe.txt"\r\n\r\n\xff\xfe raw\r\n',
    b"From: a@example.test\r\nContent-Type: text/plain\r\nContent-Disposition: attachment;"
    b' filename="notes.txt"\r\n\r\nMember ID XKH448120001\r\n',
    b"From: a@example.test\r\nSubject: 8-bit \xc3\xa9\r\n\r\n8-bit body \xc3\xa9 \xff\r\n",
    b"From: a@example.test\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
    b"Content-Type: text/plain\r\n\r\nNPI 1234567893 prescriber\r\n--b--\r\n",
    b"From: a@example.test\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nDOB 1/2/1980\r\n",
    b"From: a@example.test\r\nContent-Type: multipart/alternative\r\n\r\nno boundary at all\r\n",
    b"\r\nbody only",
    b"",
    b"Subject: x\r\n\r\n\r\n\r\nblank lines first\r\n",
]


def structure(message: Message) -> object:
    payload = message.get_payload()
    return (
        message.items(),
        [type(d) for d in message.defects],
        message.preamble,
        message.epilogue,
        [structure(part) for part in payload] if isinstance(payload, list) else payload,
    )


def same_message(raw: bytes) -> None:
    fast = parse(raw)
    full = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert structure(fast) == structure(full)
    # With the header block intake parsed already (``parse_head``): the same message.
    assert structure(parse(raw, parse_head(raw))) == structure(full)


@pytest.mark.parametrize("raw", MESSAGES)
def test_the_fast_parse_builds_the_message_the_email_parser_builds(raw: bytes) -> None:
    same_message(raw)
    same_message(raw.replace(b"\r\n", b"\n"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: a@b.test",
                b"Subject: s",
                b"Content-Type: text/plain",
                b"Content-Type: multipart/mixed",
                b"Content-Type: message/rfc822",
                b"\tfolded",
                b"junk",
                b"",
                b"X: \xc3\xa9",
                b"X:\r",
            ]
        ),
        max_size=6,
    ),
    st.sampled_from([b"\r\n", b"\n", b"\r"]),
    st.binary(max_size=40),
)
def test_generated_messages_parse_the_same(lines: list[bytes], eol: bytes, body: bytes) -> None:
    same_message(eol.join([*lines, b"", body]))


@pytest.mark.parametrize("raw", MESSAGES)
def test_extraction_is_the_same_with_the_email_parser(raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = extract(raw)
    monkeypatch.setattr(
        extract_module,
        "parse",
        lambda data, _head=None: email.message_from_bytes(data, policy=email.policy.compat32),
    )
    assert extract(raw) == fast


@pytest.mark.parametrize("text", ["pt " * 3000, "555-234-0100 " * 2500, "A1 " * 5000])
def test_a_text_with_too_many_candidates_is_searched_whole_with_the_same_spans(text: str) -> None:
    for detector in POLICIES[0].detectors:
        shape = TextShape(text)
        if detector.possible(shape):
            assert list(detector.spans(text, shape)) == list(detector.spans(text))
    assert TextShape(text).word_starts(("pt",)) is None or "pt" not in text


_DIGIT_RICH = st.text(alphabet=st.sampled_from(EDGE + "0123456789" * 3 + "ABxy -./()"), max_size=40)


@settings(max_examples=600, deadline=None)
@given(_DIGIT_RICH)
def test_the_digit_minimum_settles_only_texts_with_no_candidate(text: str) -> None:
    """``possible`` with each kind's digit minimum answers as with the one-digit gate it had."""
    for kind in prefilter.MIN_DIGITS:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(prefilter, "MIN_DIGITS", dict.fromkeys(prefilter.MIN_DIGITS, 1))
            expected = TextShape(text).possible(kind)
        assert TextShape(text).possible(kind) == expected, (kind, text)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("ssn", "SSN 123-45-6780"),
        ("npi", "NPI 1234567893"),
        ("dea", "DEA AB1234563"),
        ("mbi", "MBI 1EG4-TE5-MK73"),
        ("phone", "call (555) 234-0147"),
        ("date", "DOB 3/1/85"),
        ("icd10", "code E1A"),
        ("street", "7 Main St"),
    ],
)
def test_each_digit_minimum_is_met_by_a_shortest_match(kind: str, text: str) -> None:
    # A minimum set one higher would skip this text: its digits are exactly the minimum.
    assert sum(c.isdigit() for c in text) == prefilter.MIN_DIGITS[kind]
    assert TextShape(text).possible(kind)
