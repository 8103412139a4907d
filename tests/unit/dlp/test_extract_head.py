"""DLP reads intake's parsed header block instead of parsing it again: the same parts and
unscanned locations as parsing the completed message itself, and the head is left as it was."""

from __future__ import annotations

import pytest

from sealmail.dlp.extract import extract
from sealmail.domain import message as mime

PLAIN = (
    b"From: Dr Who <dr@clinic.example>\r\nTo: p@patients.example\r\nSubject: MRN 123456 follow-up\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nSSN 123-45-6789\r\n.dot line\r\n"
)
MULTIPART = (
    b"From: dr@clinic.example\r\nSubject: results\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n'
    b"DOB 01/02/1980\r\n--b1\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
    b'filename="labs.txt"\r\n\r\nMRN 998877\r\n--b1--\r\n'
)
NO_BODY = b"From: dr@clinic.example\r\nSubject: only a header\r\n"
ENCODED_SUBJECT = (
    b"From: dr@clinic.example\r\nSubject: =?utf-8?q?Patient_J=C3=BCrgen?=\r\n\r\nplain body text\r\n"
)


@pytest.mark.parametrize("raw", [PLAIN, MULTIPART, NO_BODY, ENCODED_SUBJECT])
def test_a_head_parsed_at_intake_gives_the_same_parts_as_parsing_again(raw: bytes) -> None:
    head = mime.parse_head(raw)
    completed, _ = mime.complete_raw(raw, "gw.example", mime.header_facts(raw, head))
    assert completed != raw  # Message-ID and Date were prepended, as for most SMTP mail
    expected = extract(completed)
    got = extract(completed, head=head)
    assert got.parts == expected.parts
    assert got.unscanned == expected.unscanned
    assert head.get_payload() == ""  # the caller's head is not changed
    assert extract(completed, head=head).parts == expected.parts  # and may be used again


def test_header_facts_from_a_head_match_facts_from_the_bytes() -> None:
    assert mime.header_facts(PLAIN, mime.parse_head(PLAIN)) == mime.header_facts(PLAIN)
