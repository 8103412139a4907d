"""What a mail transaction puts on the wire: dot-stuffing and the header check agree with
their line-by-line definitions (RFC 5321 §4.5.2, RFC 6532) for any message."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.delivery.transaction import _dot_stuff, _headers_ascii
from sealmail.domain.wire import canonical_message


def stuffed_line_by_line(message: bytes) -> bytes:
    lines = canonical_message(message).split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    body = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)
    return body + b".\r\n"


def headers_ascii_by_definition(message: bytes) -> bool:
    end = min(
        (i for i in (message.find(b"\r\n\r\n"), message.find(b"\n\n")) if i >= 0),
        default=len(message),
    )
    return message[:end].isascii()


PIECES = st.sampled_from(
    [b"", b".", b"..", b".x", b"\r\n", b"\r", b"\n", b"\r\n.", b"\n.", b"\r.", b"\0", b"a", b"Subject: hi",
     b"\xc3\xa9", b"\r\n\r\n", b"\n\n", b"end.", b". \r\n"]
)  # fmt: skip
MESSAGES = st.lists(PIECES, max_size=30).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(MESSAGES)
def test_dot_stuffing_doubles_every_leading_dot_and_ends_the_data(message: bytes) -> None:
    assert _dot_stuff(message) == stuffed_line_by_line(message)


@settings(max_examples=600, deadline=None)
@given(MESSAGES)
def test_header_check_stops_at_the_first_blank_line_however_it_is_written(message: bytes) -> None:
    assert _headers_ascii(message) == headers_ascii_by_definition(message)


def test_a_lone_dot_line_cannot_end_the_data_early() -> None:
    message = b".\r\nSubject: x\r\n\r\n.\r\n.\r\nend"
    assert _dot_stuff(message) == b"..\r\nSubject: x\r\n\r\n..\r\n..\r\nend\r\n.\r\n"
    assert _dot_stuff(b"") == b".\r\n"
