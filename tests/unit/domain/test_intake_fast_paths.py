"""The intake's fast paths decide as the whole-message passes they replaced (issue 18).

``validate_raw`` and ``header_block`` no longer read a single-part message's body (the
header end and the MIME scan stop at the first empty line), and ``crlf_lines`` copies a
message only when it has a bare LF.  The old code (or the new with its shortcut off) is
the reference, and both are run over generated hostile messages: bare CR and LF, NUL,
non-UTF-8 bytes, encoded words, long and folded lines, boundaries, nested multiparts and
message parts, header-only messages.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sealmail.domain import intake_limits
from sealmail.domain.intake_limits import IntakeLimits, Rule, Violation, validate_raw
from sealmail.domain.message import header_block
from sealmail.messages.compose import crlf_lines


def reference_header_end(raw: bytes) -> int:
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(raw)


def reference_header_block(raw: bytes) -> bytes:
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i >= 0]
    if not ends:
        return raw
    end = min(ends)
    return raw[: end + (2 if raw[end + 1 : end + 2] == b"\n" else 3)]


def reference_check_mime(raw: bytes, limits: IntakeLimits) -> Violation | None:
    """``_check_mime`` with the single-part shortcut off: every line of the message split and
    walked, the top-level header block included (the code as it was)."""
    with pytest.MonkeyPatch.context() as patch:
        # A message/* type never takes the shortcut; the walk reads the real block itself.
        patch.setattr(intake_limits, "_top_header_lines", lambda raw: [b"Content-Type: message/rfc822"])
        return intake_limits._check_mime(raw, limits)


def reference_validate_raw(raw: bytes, limits: IntakeLimits) -> Violation | None:
    if b"\0" in raw:
        return Violation(Rule.NUL_OCTET, "the message contains a NUL octet; remove it")
    header = raw[: reference_header_end(raw)]
    found = intake_limits._check_line_endings(header) or intake_limits._check_header(header, limits)
    if found is not None:
        return found
    return reference_check_mime(raw, limits)


EOLS = [b"\r\n", b"\n", b"\r", b"\n\r\n", b"\r\n\r\n", b"\n\n", b"\r\r\n", b"\n\r"]
PIECES = [
    b"From: a@clinic.example",
    b"Subject: =?utf-8?b?w6k=?= =?iso-8859-1?q?caf=E9?=",
    b"Content-Type: multipart/mixed; boundary=XX",
    b'Content-Type: multipart/alternative;\r\n boundary="YY"',
    b"Content-Type: message/rfc822",
    b"Content-Type: MESSAGE/global",
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-type:",
    b"--XX",
    b"--XX--",
    b"--YY",
    b"--YY--  ",
    b" folded",
    b"\tfolded",
    b"",
    b"X" * 1000,
    b"\xff\xfe\x80 not utf-8",
    b"\0",
    b"body text.",
    b"Received: x",
    b"To: b@example.org",
]
_LINE = st.one_of(st.sampled_from(PIECES), st.binary(max_size=12))
_MESSAGE = st.lists(st.tuples(_LINE, st.sampled_from(EOLS)), max_size=30).map(
    lambda lines: b"".join(line + eol for line, eol in lines)
)
_LIMITS = st.builds(
    IntakeLimits,
    max_mime_depth=st.integers(0, 4),
    max_mime_parts=st.integers(0, 4),
    max_header_fields=st.sampled_from([3, 500]),
    max_received=st.sampled_from([0, 100]),
)


@settings(max_examples=1500, deadline=None)
@given(_MESSAGE, st.binary(max_size=40), _LIMITS)
# Found by CI: the shortcut split the top header at LF only, the walk at CR too, so a bare CR
# hid a message/rfc822 type from the shortcut.
@example(
    b"Content-Type: message/rfc822\rContent-Type: multipart/mixed; boundary=XX\r\n",
    b"",
    IntakeLimits(max_header_fields=3, max_received=0, max_mime_depth=1, max_mime_parts=0),
)
def test_validate_raw_decides_as_the_whole_message_passes_did(
    raw: bytes, tail: bytes, limits: IntakeLimits
) -> None:
    for message in (raw, raw + tail, tail + raw):
        assert intake_limits._header_end(message) == reference_header_end(message)
        assert header_block(message) == reference_header_block(message)
        assert intake_limits._check_mime(message, limits) == reference_check_mime(message, limits)
        assert validate_raw(message, limits) == reference_validate_raw(message, limits)


def test_single_part_messages_still_meet_a_depth_limit_of_zero() -> None:
    raw = b"From: a@clinic.example\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
    assert validate_raw(raw, IntakeLimits(max_mime_depth=1)) is None
    found = validate_raw(raw, IntakeLimits(max_mime_depth=0))
    assert found is not None and found.rule is Rule.MIME_TOO_DEEP


def test_an_empty_line_ending_in_lf_lf_before_a_crlf_pair_ends_the_header() -> None:
    # "LF LF CR LF": the first empty line is the one the bare LF pair makes.
    raw = b"From: a@clinic.example\n\n\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
    assert intake_limits._header_end(raw) == reference_header_end(raw)
    assert header_block(raw) == reference_header_block(raw) == b"From: a@clinic.example\n\n"
    assert intake_limits._check_mime(raw, IntakeLimits(max_mime_parts=0)) is None
    assert reference_check_mime(raw, IntakeLimits(max_mime_parts=0)) is None


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([b"\r", b"\n", b"\r\n", b"\n\r", b"."]), st.binary(max_size=6))))
def test_crlf_lines_makes_every_bare_lf_crlf_as_the_two_replacements_did(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    expected = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert crlf_lines(raw) == expected
