"""The structural limits every submitted message must meet, checked on the raw bytes.

Both intakes (the SMTP gateway and ``POST /v1/messages/raw``) call ``validate_raw``
before Python's ``email`` parser sees the message.  That parser is recursive (a MIME
tree hundreds deep ends in ``RecursionError``) and unbounded (100,000 header fields or a
multi-megabyte folded field are read without complaint), so the checks here are one
bounded, iterative pass over the lines: no recursion, no regular expression that could
backtrack, work linear in the size of the message.

A violation is permanent: the same bytes will fail the same way on every retry, so the
gateway answers 5yz and the API 422, each naming the ``Rule``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["SINGLE_FIELDS", "IntakeLimits", "Rule", "Violation", "validate_raw"]

# RFC 5322 §2.1.1: a line MUST be at most 998 characters, excluding the CRLF.
MAX_LINE_OCTETS: Final = 998

# RFC 5322 §3.6 (the table of field counts): these fields may occur at most once.  A
# second From is the dangerous one: intake checks the first against the tenant's verified
# domains and a mail reader may show the second.
SINGLE_FIELDS: Final[frozenset[bytes]] = frozenset(
    {
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"bcc",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"subject",
    }
)

# RFC 2045 §5.1 / RFC 2046 §5.1.1: the boundary parameter, quoted or a token.
_BOUNDARY: Final = re.compile(rb'boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)


class Rule(enum.StrEnum):
    """Which limit a message broke; the API's ``rule`` field and the SMTP reply name it."""

    NUL_OCTET = "nul_octet"
    BARE_LINE_ENDING = "bare_line_ending"
    HEADER_LINE_TOO_LONG = "header_line_too_long"
    HEADER_FIELD_TOO_LONG = "header_field_too_long"
    HEADER_TOO_LARGE = "header_too_large"
    TOO_MANY_HEADER_FIELDS = "too_many_header_fields"
    MALFORMED_HEADER = "malformed_header"
    DUPLICATE_HEADER = "duplicate_header"
    ROUTING_LOOP = "routing_loop"
    MIME_TOO_DEEP = "mime_too_deep"
    TOO_MANY_MIME_PARTS = "too_many_mime_parts"


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """The limits, from the ``intake_*`` settings; defaults match the settings' defaults."""

    max_header_bytes: int = 256 * 1024
    max_header_field_bytes: int = 64 * 1024
    max_header_fields: int = 500
    # RFC 5321 §6.3: a loop is assumed once the Received count passes a large threshold;
    # 100 is the example it gives.
    max_received: int = 100
    max_mime_depth: int = 32
    max_mime_parts: int = 1000


@dataclass(frozen=True, slots=True)
class Violation:
    """The first limit the message broke; ``detail`` names fields and numbers, never content."""

    rule: Rule
    detail: str


def validate_raw(raw: bytes, limits: IntakeLimits) -> Violation | None:
    """The first violation in ``raw``, or None when the message is within every limit."""
    if b"\0" in raw:
        # RFC 5321 §4.5.2 / RFC 6152 §3: NUL is never valid mail data; a lenient next hop
        # that drops it may see an end of data where we saw none.
        return Violation(Rule.NUL_OCTET, "the message contains a NUL octet; remove it")
    end = _header_end(raw)
    header = raw[:end]
    found = _check_line_endings(header) or _check_header(header, limits)
    if found is not None:
        return found
    return _check_mime(raw, limits)


def _header_end(raw: bytes) -> int:
    """Where the top-level header block ends (before its empty line), or len(raw)."""
    crlf = raw.find(b"\r\n\r\n")
    if crlf < 0:
        lf = raw.find(b"\n\n")
        return lf if lf >= 0 else len(raw)
    # Only a bare "LF LF" before the CRLF pair can come first; one starting at or after it
    # would need an LF where the pair has its CR.  Not searching the body past it saves a
    # pass over all of a message that has none (most mail).
    lf = raw.find(b"\n\n", 0, crlf)
    return lf if lf >= 0 else crlf


def _check_line_endings(header: bytes) -> Violation | None:
    # RFC 5322 §2.2: CR and LF occur in a header only together, ending a line.  A bare
    # CR, or a bare LF among CRLF lines, is read as a line break by some receivers and
    # not by others: a header (or a message) smuggled past the checks made here.
    without_crlf = header.replace(b"\r\n", b"")
    if b"\r" in without_crlf:
        return Violation(Rule.BARE_LINE_ENDING, "a header line contains a bare CR; end lines with CRLF")
    if b"\n" in without_crlf and len(without_crlf) != len(header):
        return Violation(
            Rule.BARE_LINE_ENDING, "the header mixes CRLF and bare LF line ends; end lines with CRLF"
        )
    return None


def _fields(header: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Each field as (lower-case name, total octets, longest line); a bad line has name b""."""
    name = b""
    size = longest = 0
    started = False
    for line in header.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and started:
            size += len(line) + 2
            longest = max(longest, len(line))
            continue
        if started:
            yield name, size, longest
        head, colon, _ = line.partition(b":")
        name = head.rstrip(b" \t").lower() if colon and head.strip() else b""
        size, longest, started = len(line) + 2, len(line), True
    if started:
        yield name, size, longest


def _check_header(header: bytes, limits: IntakeLimits) -> Violation | None:
    if len(header) > limits.max_header_bytes:
        return Violation(
            Rule.HEADER_TOO_LARGE,
            f"the header section is {len(header)} octets; at most {limits.max_header_bytes}",
        )
    count = received = 0
    seen: set[bytes] = set()
    for name, size, longest in _fields(header):
        count += 1
        if count > limits.max_header_fields:
            return Violation(
                Rule.TOO_MANY_HEADER_FIELDS, f"more than {limits.max_header_fields} header fields"
            )
        if not name or any(c <= 32 or c >= 127 for c in name):
            # RFC 5322 §3.6.8: a field name is printable ASCII without colon or space.
            return Violation(Rule.MALFORMED_HEADER, f"header line {count} is not a 'Name: value' field")
        shown = name.decode("ascii")
        if longest > MAX_LINE_OCTETS:
            return Violation(
                Rule.HEADER_LINE_TOO_LONG,
                f"a line of the {shown} field has {longest} octets; fold it to at most {MAX_LINE_OCTETS}",
            )
        if size > limits.max_header_field_bytes:
            return Violation(
                Rule.HEADER_FIELD_TOO_LONG,
                f"the {shown} field is {size} octets; at most {limits.max_header_field_bytes}",
            )
        if name in SINGLE_FIELDS:
            if name in seen:
                return Violation(
                    Rule.DUPLICATE_HEADER, f"the {shown} field occurs more than once (RFC 5322 §3.6)"
                )
            seen.add(name)
        if name == b"received":
            received += 1
            if received > limits.max_received:
                return Violation(
                    Rule.ROUTING_LOOP,
                    f"more than {limits.max_received} Received fields: a mail loop (RFC 5321 §6.3)",
                )
    return None


@dataclass(slots=True)
class _Entity:
    """An open multipart: its delimiter line and how deep it sits."""

    delimiter: bytes
    depth: int


def _content_type(lines: list[bytes]) -> tuple[bytes, bytes | None]:
    """(lower-case media type, boundary or None) from one entity's header lines."""
    found: list[bytes] = []  # joined once: appending to bytes is quadratic in the folds
    taking = False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if taking:
                found.append(line)
            continue
        head, colon, rest = line.partition(b":")
        taking = bool(colon) and head.strip().lower() == b"content-type"
        if taking:
            found = [rest]
    value = b"".join(found)
    media = value.split(b";", 1)[0].strip().lower()
    match = _BOUNDARY.search(value) if media.startswith(b"multipart/") else None
    boundary = (match.group(1) or match.group(2)) if match else None
    return media, boundary


def _top_header_lines(raw: bytes) -> list[bytes]:
    """The lines ``_check_mime`` reads as the top-level header block: those of
    ``raw.replace(CRLF, LF).split(LF)`` before the first empty one, from the bytes up to
    that empty line only."""
    # The first empty line follows the first LF that is followed by LF or CRLF: at the
    # latest, the one before the first "LF CRLF".
    at = raw.find(b"\n\r\n")
    if at < 0:
        at = raw.find(b"\n\n")
    # Cut after an LF: no CRLF is split, so these lines are the whole message's first ones.
    lines = (raw if at < 0 else raw[: at + 1]).replace(b"\r\n", b"\n").split(b"\n")
    end = lines.index(b"") if b"" in lines else len(lines)
    return lines[:end]


def _check_mime(raw: bytes, limits: IntakeLimits) -> Violation | None:
    """Depth and part count of the MIME tree, by an iterative scan of boundary lines.

    ``open_`` is the stack of enclosing multiparts; a part's header block is read after
    each delimiter, and a ``message/*`` part's body starts with one more header block
    (RFC 2046 §5.2.1), one level deeper, which Python's parser also descends into.
    """
    media, boundary = _content_type(_top_header_lines(raw))
    if boundary is None and not media.startswith(b"message/"):
        # A single part (most mail): its header block is the whole tree, and no later line
        # can be a delimiter; the body is neither copied nor split.
        if 1 > limits.max_mime_depth:
            return Violation(Rule.MIME_TOO_DEEP, f"MIME parts nest more than {limits.max_mime_depth} deep")
        return None
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    open_: list[_Entity] = []
    parts = 0
    index = 0
    depth = 1
    pending_headers = True  # the top-level header block comes first
    while index < len(lines):
        if pending_headers:
            start = index
            while index < len(lines) and lines[index] != b"":
                index += 1
            media, boundary = _content_type(lines[start:index])
            index += 1
            if depth > limits.max_mime_depth:
                return Violation(
                    Rule.MIME_TOO_DEEP, f"MIME parts nest more than {limits.max_mime_depth} deep"
                )
            if boundary is not None:
                open_.append(_Entity(b"--" + boundary, depth))
                pending_headers = False
            elif media.startswith(b"message/"):
                depth += 1
            else:
                pending_headers = False
            continue
        if not open_:
            # No multipart is open, so no later line can be a delimiter: the rest of the
            # message (all of a single-part message's body) has nothing left to count.
            return None
        line = lines[index].rstrip(b" \t")
        index += 1
        if not line.startswith(b"--") or not open_:
            continue
        for level in range(len(open_) - 1, -1, -1):
            entity = open_[level]
            if line == entity.delimiter + b"--":
                del open_[level:]
                break
            if line == entity.delimiter:
                del open_[level + 1 :]
                parts += 1
                if parts > limits.max_mime_parts:
                    return Violation(
                        Rule.TOO_MANY_MIME_PARTS, f"more than {limits.max_mime_parts} MIME parts"
                    )
                depth = entity.depth + 1
                pending_headers = True
                break
    return None
