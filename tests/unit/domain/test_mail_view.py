"""The bounded mail view: hostile shapes cost little memory and time, ordinary mail reads as before."""

from __future__ import annotations

import time
import tracemalloc
from email.message import EmailMessage

import pytest
from tests.support.hostile_mail import CORPUS, UNDISPLAYED

from sealmail.domain import html_budget, mail_view
from sealmail.domain.message import parse_content
from sealmail.portal.mailbox import parse_letter
from sealmail.portal.sanitize import TOO_COMPLEX, clean_html

TO = "patient@plain.example"
# A ~1 MB message may be held a few times over (raw, decoded parts); the unbounded parse
# of the encoded-word bomb grew past 20 GB.
PEAK_BYTES = 64 * 1024 * 1024
SECONDS = 5.0


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_message_is_read_within_memory_and_time(name: str) -> None:
    raw = CORPUS[name](TO)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        letter = parse_letter(raw)
        content = parse_content(raw)
        if letter.html:
            clean_html(letter.html)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    elapsed = time.perf_counter() - started
    assert peak < PEAK_BYTES, f"{name}: peak {peak / 2**20:.0f} MiB"
    assert elapsed < SECONDS, f"{name}: {elapsed:.1f} s"
    assert letter.subject.startswith(name)
    assert bool(letter.undisplayed) == (name in UNDISPLAYED)
    assert bool(content.problems) == (name in UNDISPLAYED)


def test_ordinary_message_reads_like_the_email_package() -> None:
    msg = EmailMessage()
    msg["Subject"] = "Résultats d'analyse 日本語 " * 4
    msg["From"] = "Zoë Martin <zoe@clinic.example>"
    msg["To"] = "patient@plain.example"
    msg.set_content("Texte ü\n")
    msg.add_alternative("<p>Texte ü</p>\n", subtype="html")
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="résumé.pdf")
    letter = parse_letter(msg.as_bytes())
    assert letter.subject == str(msg["Subject"]).strip()
    assert letter.sender == "Zoë Martin <zoe@clinic.example>"
    assert letter.text == "Texte ü\n"
    assert letter.html == "<p>Texte ü</p>\n"
    assert [(a.filename, a.content_type, a.data) for a in letter.attachments] == [
        ("résumé.pdf", "application/pdf", b"%PDF-1.4")
    ]
    assert letter.problems == []


def test_encoded_words_past_the_cap_stay_as_written() -> None:
    value = " ".join(["=?utf-8?q?caf=C3=A9?="] * 3)
    decoded, truncated = mail_view.decode_words(value, 2)
    assert decoded == "cafécafé =?utf-8?q?caf=C3=A9?="
    assert truncated


@pytest.mark.parametrize("charset", ["x-unknown-999", "zlib", "base64", "rot13", "idna", '"'])
def test_unknown_or_non_text_charsets_read_as_utf8_with_replacement(charset: str) -> None:
    assert mail_view.to_text(b"caf\xe9", charset) in ("caf\ufffd", "caf\xe9")


def test_html_budget_counts_nesting_not_siblings() -> None:
    assert html_budget.fits("<p>a" * 10_000 + "<br>" * 10_000)
    assert not html_budget.fits("<div>" * 1_000)
    assert not html_budget.fits("<b><i>" * 200)
    assert not html_budget.fits("<span></span>" * 60_000)


def test_sanitizer_refuses_html_over_budget_without_parsing_it() -> None:
    started = time.process_time()
    assert clean_html("<div>" * 100_000) == TOO_COMPLEX
    assert time.process_time() - started < 1.0
