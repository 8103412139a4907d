"""Form definitions, submission checks, magic bytes, the time-token and the renderings."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from sealmail.forms import pdf, rendering, timetoken
from sealmail.forms.checking import Signer, Upload, check, visible
from sealmail.forms.definition import FormDefinition
from sealmail.forms.filetypes import FileKind, sniff
from sealmail.forms.web import condition_css, css_string, frame_csp

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.4\n%test\n"
SIGNER = Signer(datetime(2026, 12, 4, 3, 0, tzinfo=UTC), "192.0.2.7")


def definition(**over: Any) -> FormDefinition:
    base: dict[str, Any] = {
        "title": "New patient intake",
        "recipients": ["intake@clinic.example"],
        "sender": "forms@clinic.example",
        "fields": [
            {"name": "full_name", "label": "Full name", "type": "text", "required": True, "max_length": 50},
            {"name": "email", "label": "Email", "type": "email"},
            {"name": "age", "label": "Age", "type": "number", "min": 0, "max": 130},
            {"name": "visit", "label": "Visit", "type": "select", "options": ["new", "follow-up"],
             "required": True},
            {"name": "reason", "label": "Reason", "type": "textarea", "required": True,
             "show_if": {"field": "visit", "equals": "new"}},
            {"name": "card", "label": "Insurance card", "type": "file", "accept": ["png", "pdf"],
             "max_bytes": 1000},
            {"name": "sig", "label": "Signature", "type": "signature", "required": True},
            {"name": "consent", "label": "Consent", "type": "consent", "text": "I agree to treatment.",
             "required": True},
        ],
    }  # fmt: skip
    base.update(over)
    return FormDefinition.model_validate(base)


def good_values(**over: list[str]) -> dict[str, list[str]]:
    values = {
        "full_name": ["Pat Doe"],
        "email": ["pat@example.net"],
        "age": ["41"],
        "visit": ["new"],
        "reason": ["Knee pain"],
        "sig": ["Pat Doe"],
        "consent": ["yes"],
    }
    values.update(over)
    return values


def test_a_valid_submission_records_signature_time_ip_and_the_consent_statement() -> None:
    got = check(definition(), good_values(), {"card": [Upload("card.png", PNG)]}, SIGNER)
    assert got.ok, got.errors
    assert got.answers["sig"] == {
        "typed_name": "Pat Doe",
        "signed_at": SIGNER.at.isoformat(),
        "ip": "192.0.2.7",
    }
    assert got.answers["consent"]["statement"] == "I agree to treatment."
    assert got.answers["age"] == 41
    assert [(f.filename, f.media_type) for f in got.files] == [("card.png", "image/png")]


def test_required_missing_and_bad_values_are_reported_per_field() -> None:
    values = good_values(full_name=[""], email=["not-an-address"], age=["200"], consent=[], sig=["   "])
    got = check(definition(), values, {}, SIGNER)
    assert set(got.errors) == {"full_name", "email", "age", "consent", "sig"}


def test_a_hidden_conditional_field_is_neither_required_nor_kept() -> None:
    values = good_values(visit=["follow-up"], reason=["posted anyway"])
    got = check(definition(), values, {}, SIGNER)
    assert got.ok, got.errors
    assert "reason" not in got.answers
    assert "reason" in visible(definition(), good_values())
    missing = check(definition(), good_values(reason=[]), {}, SIGNER)
    assert "reason" in missing.errors


@pytest.mark.parametrize(
    ("name", "data", "why"),
    [
        ("card.png", b"MZ\x90\x00 a windows program", "not accepted"),
        ("card.png", b"\xff\xd8\xff\xe0 a jpeg", "not accepted"),  # a kind the field does not take
        ("card.pdf", PDF + b"x" * 2000, "larger than"),
    ],
)
def test_uploads_are_judged_by_content_and_size_not_name(name: str, data: bytes, why: str) -> None:
    got = check(definition(), good_values(), {"card": [Upload(name, data)]}, SIGNER)
    assert why in got.errors["card"]


def test_a_file_named_as_another_type_is_delivered_as_what_it_is() -> None:
    got = check(definition(), good_values(), {"card": [Upload("scan.exe", PDF)]}, SIGNER)
    assert got.ok
    assert got.files[0].filename == "scan.pdf"
    assert got.files[0].media_type == "application/pdf"


def test_sniff_knows_each_kind() -> None:
    assert sniff(PDF) is FileKind.PDF
    assert sniff(PNG) is FileKind.PNG
    assert sniff(b"GIF89a....") is FileKind.GIF
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is FileKind.WEBP
    assert sniff(b"<html>") is None


@pytest.mark.parametrize(
    "over",
    [
        {"fields": [{"name": "Bad-Name", "label": "x", "type": "text"}]},
        {"fields": [{"name": "a", "label": "x", "type": "select"}]},
        {
            "fields": [
                {"name": "a", "label": "x", "type": "text"},
                {"name": "a", "label": "y", "type": "text"},
            ]
        },
        {"fields": [{"name": "b", "label": "x", "type": "text", "show_if": {"field": "a", "equals": "y"}}]},
        {"embed_origins": ["https://x.example; script-src *"]},
        {"embed_origins": ["http://clinic.example"]},
        {"recipients": ["not an address"]},
    ],
)
def test_unsafe_or_inconsistent_definitions_are_refused(over: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        definition(**over)


def test_time_token_needs_the_fill_time_expires_and_cannot_be_forged() -> None:
    key = b"k" * 32
    token = timetoken.issue(key, "form_a", 1000.0)
    assert timetoken.check(key, "form_a", token, 1001.0, 3, 60).problem is timetoken.TokenProblem.TOO_FAST
    assert timetoken.check(key, "form_a", token, 1010.0, 3, 60).problem is None
    assert timetoken.check(key, "form_a", token, 1061.0, 3, 60).problem is timetoken.TokenProblem.EXPIRED
    assert timetoken.check(key, "form_b", token, 1010.0, 3, 60).problem is timetoken.TokenProblem.FORGED
    assert timetoken.check(b"x" * 32, "form_a", token, 1010.0, 3, 60).problem is timetoken.TokenProblem.FORGED
    assert timetoken.check(key, "form_a", "junk", 1010.0, 3, 60).problem is timetoken.TokenProblem.MALFORMED


def test_conditional_css_escapes_values_and_chains_parents() -> None:
    d = definition(
        fields=[
            {"name": "a", "label": "A", "type": "radio", "options": ['x"}body{display:none']},
            {
                "name": "b",
                "label": "B",
                "type": "checkbox",
                "show_if": {"field": "a", "equals": 'x"}body{display:none'},
            },
            {"name": "c", "label": "C", "type": "text", "show_if": {"field": "b", "equals": "yes"}},
        ]
    )
    css = condition_css(d)
    assert '"}body' not in css and "\\22 " in css
    rule_c = next(line for line in css.splitlines() if line.startswith("form") and ".c-c" in line)
    assert "input[name=b]" in rule_c and "input[name=a]" in rule_c
    assert css_string("a b") == '"a b"'


def test_frame_ancestors_names_only_the_configured_origins() -> None:
    assert frame_csp([]).endswith("frame-ancestors 'self'")
    assert "frame-ancestors 'self' https://www.clinic.example" in frame_csp(["https://www.clinic.example"])


def test_the_pdf_rendering_is_a_readable_pdf() -> None:
    text = "Intake (copy)\\\n" + "\n".join(f"line {i}" for i in range(120)) + "\nZoë"
    reader = PdfReader(io.BytesIO(pdf.render(text)))
    assert len(reader.pages) == 3
    first = reader.pages[0].extract_text()
    assert "Intake (copy)\\" in first
    assert "Zoë" in reader.pages[2].extract_text()


def test_the_text_rendering_names_labels_and_attachments() -> None:
    d = definition()
    got = check(d, good_values(), {"card": [Upload("card.png", PNG)]}, SIGNER)
    facts = rendering.SubmissionFacts("fsub_1", "form_1", 2, SIGNER.at, "Riverside Clinic")
    text = rendering.to_text(facts, d, got.answers)
    assert "Full name:\n    Pat Doe" in text
    assert "card.png (image/png" in text
    assert "signed 2026-12-04T03:00:00+00:00 from 192.0.2.7" in text
    doc = rendering.document(facts, d, got.answers)
    assert doc["schema"] == "sealmail.form-submission/1" and doc["form_version"] == 2
