"""The report PDF writer (read back by pypdf) and the signed-document format, without a database."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pypdf import PdfReader

from sealmail.evidence import signed
from sealmail.evidence.pdf import LINES_PER_PAGE, text_pdf


def test_pdf_text_is_extractable_across_pages_with_escaped_characters() -> None:
    lines = [f"row {i} (a\\b) é" for i in range(LINES_PER_PAGE * 2)]
    reader = PdfReader(io.BytesIO(text_pdf("Title (x)", lines)))
    assert len(reader.pages) == 3
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Title (x)" in text
    assert "row 0 (a\\b) é" in text
    assert f"row {LINES_PER_PAGE * 2 - 1} (a\\b)" in text


def test_signed_document_names_an_added_a_removed_and_an_altered_field() -> None:
    key = Ed25519PrivateKey.generate()
    doc = signed.sign("test/1", {"a": {"b": 1, "c": [1, 2]}, "d": None}, key)
    assert signed.verify(doc).ok
    doc["body"]["a"]["b"] = 2
    doc["body"]["e"] = "new"
    del doc["body"]["d"]
    problems = signed.verify(doc).problems
    assert problems == [
        "body.a.b: altered after signing",
        "body.d: missing",
        "body.e: not covered by the signature",
    ]


@pytest.mark.parametrize("broken", [{}, {"format": "x"}, "text", None])
def test_a_non_document_is_refused_not_crashed_on(broken: object) -> None:
    assert not signed.verify(broken).ok


def test_an_unreadable_signature_is_named() -> None:
    doc = signed.sign("test/1", {"a": 1}, Ed25519PrivateKey.generate())
    doc["signature"]["value"] = "not base64!"
    assert signed.verify(doc).problems == ["signature: unreadable (public_key and value must be base64)"]
