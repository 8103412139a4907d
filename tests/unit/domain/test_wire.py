"""``canonical_message``: the bytes Sealmail transmits are CRLF-only and NUL-free."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.domain.wire import Canonical, canonical_message, crlf_only, prepend_lines


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


def test_canonical_bytes_are_marked_and_returned_without_a_second_scan() -> None:
    canonical = canonical_message(b"A: 1\nB: 2\n\nbody")
    assert type(canonical) is Canonical
    assert canonical_message(canonical) is canonical
    # Plain bytes that happen to be canonical are checked, then marked.
    plain = bytes(canonical)
    assert type(plain) is bytes
    assert type(canonical_message(plain)) is Canonical
    # Slicing or concatenating drops the mark: the result is checked again in full.
    assert type(canonical + b"x\n") is bytes
    assert canonical_message(canonical + b"x\n").endswith(b"body\r\nx\r\n")


def test_prepended_lines_keep_the_mark_only_when_they_are_canonical() -> None:
    message = canonical_message(b"From: a@clinic.example\r\n\r\nbody\r\n")
    fields = b"DKIM-Signature: v=1; a=rsa-sha256;\r\n\tb=abc\r\nX-Trace: 1\r\n"
    signed = prepend_lines(fields, message)
    assert type(signed) is Canonical
    assert signed == fields + message
    assert type(prepend_lines(b"", message)) is Canonical
    hostile = [
        b"X-A: 1\nBcc: evil@example.org\r\n",  # bare LF: a new field at a lenient hop
        b"X-A: 1\rBcc: evil@example.org\r\n",  # bare CR
        b"X-A: 1\x00\r\n",  # NUL
        b"X-A: 1",  # not a whole line: it would run into the next field
        b"X-A: 1\r",  # cut through a CRLF
    ]
    for head in hostile:
        joined = prepend_lines(head, message)
        assert type(joined) is bytes, head
        wire = canonical_message(joined)
        assert crlf_only(wire) and b"\0" not in wire
    # Unmarked message: nothing is assumed about it.
    assert type(prepend_lines(fields, bytes(message))) is bytes


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([b"X: a", b"\r", b"\n", b"\r\n", b"\x00", b" "]), max_size=12).map(b"".join),
    st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"\x00", b".", b" "]), max_size=30).map(b"".join),
)
def test_the_mark_never_changes_the_bytes_that_reach_the_wire(head: bytes, body: bytes) -> None:
    message = canonical_message(b"From: a@clinic.example\r\n\r\n" + body)
    marked = canonical_message(prepend_lines(head, message))
    assert marked == canonical_message(head + bytes(message))
    assert crlf_only(marked) and b"\0" not in marked
