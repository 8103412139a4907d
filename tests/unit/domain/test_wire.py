"""``canonical_message``: the bytes Sealmail transmits are CRLF-only and NUL-free."""

from __future__ import annotations

from sealmail.domain.wire import canonical_message


def test_a_bare_line_end_in_a_header_becomes_a_fold_not_a_new_field() -> None:
    raw = b"From: a@clinic.example\r\nX-Note: a\rBcc: evil@example.org\nCc: x@example.org\r\n\r\nbody\n"
    assert canonical_message(raw) == (
        b"From: a@clinic.example\r\nX-Note: a\r\n Bcc: evil@example.org\r\n Cc: x@example.org\r\n\r\nbody\r\n"
    )


def test_canonical_message_is_crlf_only_without_nul() -> None:
    raw = b"A: 1\rB: 2\nC: 3\x00\r\n\r\nbody\n.\r\n\x00.\rend"
    canonical = canonical_message(raw)
    assert canonical == b"A: 1\r\n B: 2\r\n C: 3\r\n\r\nbody\r\n.\r\n.\r\nend\r\n"
    lf_only = b"A: 1\nB: 2\n\nbody\n"
    assert canonical_message(lf_only) == b"A: 1\r\nB: 2\r\n\r\nbody\r\n"
    assert canonical_message(canonical) == canonical
