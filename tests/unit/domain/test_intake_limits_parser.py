"""``validate_raw`` reads the MIME tree as Python's ``email`` parser does, or errs on the safe side.

The limits exist because that parser (used by DLP, the content view and delivery) recurses
and keeps every part; a message the check passes must be within the limits once the
parser has read it.  The property test builds trees from the spellings that once made the
two disagree (RFC 2231 ``boundary*0=``, ``xboundary=`` before ``boundary=``, a boundary of
over 200 characters, CR-only line ends in the body, a header block ended by a line that is
no header, multipart/digest's default type, message/delivery-status blocks) and compares.
"""

from __future__ import annotations

import email
import email.policy
import time
from email.message import Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealmail.domain.intake_limits import MAX_COMMENT_DEPTH, MAX_PARAMETERS, IntakeLimits, Rule, validate_raw

HEAD = b"From: a@clinic.example\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
SMALL = IntakeLimits(max_mime_depth=4, max_mime_parts=6)

# How a multipart's Content-Type may name its boundary ``{b}`` (``{s}`` the subtype).
SPELLINGS = (
    'Content-Type: multipart/{s}; boundary="{b}"',
    "Content-Type: multipart/{s}; boundary={b}",
    "CONTENT-TYPE: Multipart/{s}; BOUNDARY={b}",
    "Content-Type: multipart/{s}; boundary*0={b}",
    "Content-Type: multipart/{s}; boundary*=us-ascii''{b}",
    "Content-Type: multipart/{s}; xboundary=zz; boundary={b}",
    "Content-Type: multipart/{s};\r\n\tboundary={b}",
)
# What may stand in a part's header block before its Content-Type (a line that is no
# header line ends the block there for the parser).
PREFIXES = ("", "X-A: 1\r\n", "not a header line\r\n")


def shape(msg: Message) -> tuple[int, int]:
    """(depth, parts) of a parsed message, counted as ``validate_raw`` counts them."""
    depth = parts = 0
    stack = [(msg, 1)]
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        payload = node.get_payload()
        if isinstance(payload, list):
            if (
                node.get_content_maintype() == "multipart"
                or node.get_content_type() == "message/delivery-status"
            ):
                parts += len(payload)
            stack += [(child, level + 1) for child in payload if isinstance(child, Message)]
    return depth, parts


@st.composite
def entity(draw: st.DrawFn, level: int = 0, in_digest: bool = False) -> str:
    """One entity, header block and body, with CRLF line ends (the caller may change them)."""
    kinds = ["leaf", "status"] + (["multi", "message"] if level < 6 else [])
    kind = draw(st.sampled_from(kinds))
    prefix = draw(st.sampled_from(PREFIXES))
    if kind == "leaf":
        return f"{prefix}Content-Type: text/plain\r\n\r\nbody\r\n"
    if kind == "status":
        blocks = draw(st.integers(1, 4))
        return prefix + "Content-Type: message/delivery-status\r\n\r\n" + "Action: failed\r\n\r\n" * blocks
    if kind == "message":
        # In a digest a part without Content-Type is message/rfc822 (RFC 2046 §5.1.5).
        own = "" if in_digest and draw(st.booleans()) else "Content-Type: message/rfc822\r\n"
        inner = draw(entity(level + 1))
        return f"{prefix}{own}\r\nFrom: c@example.org\r\n{inner}"
    subtype = draw(st.sampled_from(["mixed", "digest"]))
    boundary = f"b{level}" + ("Q" * 250 if draw(st.booleans()) else "")
    spelling = draw(st.sampled_from(SPELLINGS)).format(s=subtype, b=boundary)
    children = draw(st.lists(entity(level + 1, subtype == "digest"), min_size=1, max_size=3))
    body = "".join(f"--{boundary}\r\n{child}" for child in children)
    return f"{prefix}{spelling}\r\n\r\n{body}--{boundary}--\r\n"


@settings(max_examples=400, deadline=None)
@given(tree=entity(), body_end=st.sampled_from(["\r\n", "\n", "\r"]))
def test_a_message_the_check_passes_is_within_the_limits_as_the_parser_reads_it(
    tree: str, body_end: str
) -> None:
    # The top-level header keeps CRLF (a bare CR there is refused outright); the rest may not.
    top, _, rest = tree.partition("\r\n\r\n")
    raw = HEAD + top.encode() + b"\r\n\r\n" + rest.replace("\r\n", body_end).encode()
    if validate_raw(raw, SMALL) is not None:
        return
    depth, parts = shape(email.message_from_bytes(raw, policy=email.policy.compat32))
    assert depth <= SMALL.max_mime_depth
    assert parts <= SMALL.max_mime_parts


def chain(depth: int, spelling: str, end: bytes = b"\r\n") -> bytes:
    body = b"Content-Type: text/plain" + end + end + b"x" + end
    for level in range(depth, 0, -1):
        b = f"b{level}".encode()
        head = spelling.format(s="mixed", b=f"b{level}").encode()
        body = head + end + end + b"--" + b + end + body + b"--" + b + b"--" + end
    return HEAD + body


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_three_hundred_levels_are_refused_however_the_boundary_is_spelled(spelling: str) -> None:
    found = validate_raw(chain(300, spelling), IntakeLimits())
    assert found is not None and found.rule is Rule.MIME_TOO_DEEP


def test_cr_only_line_ends_in_the_body_still_delimit_parts() -> None:
    # The parser ends lines at a bare CR; a check that split at LF saw one long line.
    nested = chain(300, SPELLINGS[1], b"\r")
    raw = (
        HEAD
        + b"Content-Type: multipart/mixed; boundary=top\r\n\r\n--top\r"
        + nested[len(HEAD) :]
        + b"--top--\r\n"
    )
    found = validate_raw(raw, IntakeLimits())
    assert found is not None and found.rule is Rule.MIME_TOO_DEEP


@pytest.mark.parametrize("field", [b"Content-Type: text/plain\r\n", b"Content-Transfer-Encoding: base64\r\n"])
def test_a_second_content_field_is_ambiguous_at_any_level(field: bytes) -> None:
    part = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n" + field + b"\r\nhi\r\n"
    nested = HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + part + b"--B--\r\n"
    top = HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n" + field + b"\r\nhi\r\n"
    for raw in (nested, top):
        found = validate_raw(raw, IntakeLimits())
        assert found is not None and found.rule is Rule.DUPLICATE_HEADER


def test_a_space_before_the_colon_is_malformed() -> None:
    # The parser ends the header block at "Name : value", so a Sender after it went unchecked.
    raw = HEAD + b"X-Note : hi\r\nSender: ceo@bank.example\r\n\r\nbody\r\n"
    found = validate_raw(raw, IntakeLimits())
    assert found is not None and found.rule is Rule.MALFORMED_HEADER


def test_part_headers_are_held_to_the_header_limits() -> None:
    folded = b"X-Big: " + b"\r\n ".join([b"y" * 900] * 80) + b"\r\n"
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + folded + b"\r\nhi\r\n--B--\r\n"
    found = validate_raw(raw, IntakeLimits())
    assert found is not None and found.rule is Rule.HEADER_FIELD_TOO_LONG


@pytest.mark.parametrize("name", [b"Content-Type", b"Content-Disposition"])
def test_a_parameter_field_of_semicolons_is_refused_before_anything_parses_it(name: bytes) -> None:
    # 60 KB of quoted semicolons: the email package's parameter splitter spends seconds on one.
    value = b'attachment; filename="' + b"\r\n ".join([b";" * 900] * 66) + b'"'
    part = name + b": " + value + b"\r\n\r\nhi\r\n"
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n" + part + b"--B--\r\n"
    started = time.perf_counter()
    found = validate_raw(raw, IntakeLimits())
    assert time.perf_counter() - started < 0.5
    assert found is not None and found.rule is Rule.TOO_MANY_PARAMETERS
    fine = b"attachment;\r\n " + b";\r\n ".join(b"filename*%d=a" % i for i in range(MAX_PARAMETERS - 1))
    assert validate_raw(raw.replace(value, fine), IntakeLimits()) is None


def with_to(value: bytes) -> bytes:
    return HEAD.replace(b"To: b@example.org", b"To: " + value) + b"\r\nbody\r\n"


def test_comments_nested_past_the_limit_are_refused_and_the_limit_still_parses() -> None:
    deepest = b"(" * MAX_COMMENT_DEPTH + b"x" + b")" * MAX_COMMENT_DEPTH + b" b@example.org"
    assert validate_raw(with_to(deepest), IntakeLimits()) is None
    # What delivery's link tracking does to the field (policy.SMTP's header registry).
    parsed = email.message_from_bytes(with_to(deepest), policy=email.policy.SMTP)
    assert parsed["To"].addresses[0].addr_spec == "b@example.org"
    # Parentheses in a quoted display name or escaped are no comments.
    quoted = b'"' + b"(" * 300 + b'" <b@example.org>, \\' + b"\\(" * 300
    assert validate_raw(with_to(quoted), IntakeLimits()) is None
    for value in (b"(" + deepest, b"\r\n ".join([b"(" * 900] * 6) + b"b@example.org"):
        found = validate_raw(with_to(value), IntakeLimits())
        assert found is not None and found.rule is Rule.MALFORMED_HEADER, found
