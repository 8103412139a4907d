"""One message's DLP scan is bounded in work, whatever its parts hold.

Before the bound, every part was scanned up to 2 M characters and every candidate match paid
a context check: "phone 555-123-4567 " repeated over a 2 M part took about 5 s, and a message
(or a DOCX of compressed parts) carrying a dozen such parts took a minute of intake CPU.
"""

from __future__ import annotations

import time

from sealmail.dlp import scan_message
from sealmail.dlp.rules import (
    MAX_CANDIDATES,
    MAX_MESSAGE_CHARS,
    MAX_PART_CHARS,
    Action,
    DlpPolicy,
    TextPart,
    scan,
)

SSN = "512-44-3321"


def _filled(token: str, size: int = MAX_PART_CHARS) -> str:
    return token * (size // len(token))


def test_a_message_made_of_candidates_is_scanned_in_bounded_time_and_reported_unscanned() -> None:
    # Four parts of candidates took about 20 s before the budget (5 s each); the limit is
    # generous against a loaded machine and still far below that.
    parts = [TextPart(f"attachment[{i}]:a.txt", _filled("phone 555-123-4567 ")) for i in range(4)]
    started = time.perf_counter()
    verdict = scan(parts, DlpPolicy())
    assert time.perf_counter() - started < 6
    assert verdict.unscanned == tuple(f"attachment[{i}]" for i in range(4))
    assert verdict.action is Action.REQUIRE_ENCRYPTION


def test_the_candidate_budget_is_shared_by_every_detector_and_part() -> None:
    streets = _filled("1 Main St ", 10 * (MAX_CANDIDATES * 3 // 5))
    parts = [TextPart("text", streets), TextPart("html", streets), TextPart("subject", f"SSN {SSN}")]
    verdict = scan(parts, DlpPolicy())
    # The first part spent three fifths of the budget; the second ran out; the third was not scanned.
    assert verdict.unscanned == ("html", "subject")
    assert "not scanned: html, subject" in verdict.reason


def test_text_past_the_message_limit_is_not_scanned_and_is_reported() -> None:
    full = MAX_MESSAGE_CHARS // MAX_PART_CHARS
    parts = [
        TextPart(
            f"attachment[{i}]:a.txt", "lorem ipsum " * (MAX_PART_CHARS // 12) + "x" * (MAX_PART_CHARS % 12)
        )
        for i in range(full)
    ]
    parts.append(TextPart("attachment[99]:late.txt", f"SSN {SSN}"))
    verdict = scan(parts, DlpPolicy())
    assert verdict.unscanned == ("attachment[99]",)
    assert verdict.findings == ()


def test_an_ordinary_message_keeps_its_findings_under_the_budget() -> None:
    text = f"Patient DOB 03/14/1985, SSN {SSN}. " + "Routine follow-up notes. " * 1000
    verdict = scan([TextPart("text", text)], DlpPolicy())
    assert verdict.unscanned == ()
    assert {"ssn", "dob"} <= verdict.detectors


def test_a_25_mb_html_body_is_parsed_only_up_to_the_html_limit_and_reported() -> None:
    html = b"<p>1 Main St</p>" * (25_000_000 // 16)
    raw = b"From: a@b.test\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n" + html
    started = time.perf_counter()
    verdict = scan_message(raw, DlpPolicy())
    # Parsing all 25 MB took 11 s before the limit; a generous bound against a loaded machine.
    assert time.perf_counter() - started < 5
    assert verdict.unscanned == ("html",)


def test_text_too_much_to_scan_counts_as_phi_even_where_unreadable_parts_do_not() -> None:
    # A tenant's unscanned_action "none" is for parts nobody can read (an image, an encrypted
    # PDF); text the scanner only ran out on is a patient list or a report: protect it.
    lenient = DlpPolicy(unscanned_action=Action.NONE)
    big = TextPart("attachment[0]:list.txt", "lorem ipsum " * (MAX_PART_CHARS // 12 + 10))
    assert scan([big], lenient).action is Action.REQUIRE_ENCRYPTION
    crowded = TextPart("text", _filled("1 Main St ", 10 * (MAX_CANDIDATES + 10)))
    assert scan([crowded], lenient).action is Action.REQUIRE_ENCRYPTION
    unreadable = scan([TextPart("text", "hello")], lenient, unscanned=["attachment[1]:scan.png"])
    assert unreadable.action is Action.NONE
