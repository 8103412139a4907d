"""``validate_raw``: the bounded, non-recursive checks both intakes run on the raw bytes."""

from __future__ import annotations

import email
import email.policy

import pytest

from sealmail.domain.intake_limits import IntakeLimits, Rule, validate_raw

LIMITS = IntakeLimits()
HEAD = b"From: a@clinic.example\r\nTo: b@example.org\r\nSubject: s\r\n"


def multipart_chain(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\nhi\r\n"
    for level in range(depth, 0, -1):
        b = f"=_{level}".encode()
        body = b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n--' + b + b"\r\n" + body
        body += b"--" + b + b"--\r\n"
    return HEAD + body


def rfc822_chain(depth: int) -> bytes:
    raw = HEAD
    for _ in range(depth):
        raw += b"Content-Type: message/rfc822\r\n\r\nFrom: c@example.org\r\n"
    return raw + b"Content-Type: text/plain\r\n\r\nhi\r\n"


def test_an_ordinary_message_passes_with_crlf_or_lf_line_ends() -> None:
    raw = HEAD + b"MIME-Version: 1.0\r\n\r\nHello\r\n"
    assert validate_raw(raw, LIMITS) is None
    assert validate_raw(raw.replace(b"\r\n", b"\n"), LIMITS) is None


def test_depth_is_counted_across_multiparts_and_message_parts() -> None:
    assert validate_raw(multipart_chain(LIMITS.max_mime_depth - 1), LIMITS) is None
    too_deep = validate_raw(multipart_chain(LIMITS.max_mime_depth), LIMITS)
    assert too_deep is not None and too_deep.rule is Rule.MIME_TOO_DEEP
    assert validate_raw(rfc822_chain(LIMITS.max_mime_depth - 1), LIMITS) is None
    too_deep = validate_raw(rfc822_chain(LIMITS.max_mime_depth), LIMITS)
    assert too_deep is not None and too_deep.rule is Rule.MIME_TOO_DEEP


def test_siblings_do_not_add_depth_but_count_as_parts() -> None:
    parts = b"".join(b"--XX\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(50))
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n" + parts + b"--XX--\r\n"
    assert validate_raw(raw, LIMITS) is None
    found = validate_raw(raw, IntakeLimits(max_mime_parts=49))
    assert found is not None and found.rule is Rule.TOO_MANY_MIME_PARTS


def test_the_deepest_message_allowed_still_parses_without_recursion_error() -> None:
    # The limit's upper bound (config.py: le=100) must be below what the email package survives.
    limits = IntakeLimits(max_mime_depth=100)
    for raw in (multipart_chain(99), rfc822_chain(99)):
        assert validate_raw(raw, limits) is None
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert len(list(parsed.walk())) >= 99
        assert parsed.as_bytes()


def test_a_thousand_levels_are_refused_without_recursing() -> None:
    found = validate_raw(multipart_chain(1000), LIMITS)
    assert found is not None and found.rule is Rule.MIME_TOO_DEEP


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        (b"Subject: again\r\n", Rule.DUPLICATE_HEADER),
        (b"sender: x@clinic.example\r\nSender: y@clinic.example\r\n", Rule.DUPLICATE_HEADER),
        (b"X-A: a\x00\r\n", Rule.NUL_OCTET),
        (b"X-A: a\rb\r\n", Rule.BARE_LINE_ENDING),
        (b"X-A: a\nb: c\r\n", Rule.BARE_LINE_ENDING),
        (b"no colon here\r\n", Rule.MALFORMED_HEADER),
        (b"X-A: " + b"a" * 994 + b"\r\n", Rule.HEADER_LINE_TOO_LONG),
        (b"Received: x\r\n" * 101, Rule.ROUTING_LOOP),
        (b"X-A: a\r\n" * 501, Rule.TOO_MANY_HEADER_FIELDS),
        (
            b"X-A: a\r\n" + b" " + b"b" * 900 + b"\r\n" * 1 + (b" " + b"b" * 900 + b"\r\n") * 80,
            Rule.HEADER_FIELD_TOO_LONG,
        ),
    ],
)
def test_each_header_rule(extra: bytes, rule: Rule) -> None:
    found = validate_raw(HEAD + extra + b"\r\nbody\r\n", LIMITS)
    assert found is not None
    assert found.rule is rule
    # The detail names fields and numbers, never header content.
    assert b"clinic.example".decode() not in found.detail


def test_received_up_to_the_limit_is_fine() -> None:
    assert validate_raw(HEAD + b"Received: x\r\n" * 100 + b"\r\nbody\r\n", LIMITS) is None


def test_nul_in_the_body_is_refused_too() -> None:
    found = validate_raw(HEAD + b"\r\nline\r\n\x00.\r\nmore\r\n", LIMITS)
    assert found is not None and found.rule is Rule.NUL_OCTET
