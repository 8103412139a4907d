"""``canonical_message``: the bytes Sealmail transmits are CRLF-only and NUL-free."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.domain.wire import canonical_message, crlf_only


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


@settings(max_examples=500)
@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"\x00", b" "]), max_size=40).map(b"".join))
def test_crlf_only_holds_exactly_when_no_cr_or_lf_stands_outside_a_crlf(data: bytes) -> None:
    # The definition it replaced: remove every CRLF, then no CR or LF may be left.
    rest = data.replace(b"\r\n", b"")
    assert crlf_only(data) == (b"\r" not in rest and b"\n" not in rest)


def test_crlf_only_sees_a_cr_and_an_lf_apart_or_reversed() -> None:
    assert crlf_only(b"a\r\nb\r\n")
    assert crlf_only(b"")
    assert not crlf_only(b"a\rb\nc")  # one of each, but not a pair
    assert not crlf_only(b"a\n\rb")
    assert not crlf_only(b"\na\r")
