"""A bounded, read-only view of a stored message: headers, bodies and attachments.

Every place that shows stored mail (portal inbox, message and print views, the API's
``/content``) reads it through :func:`view` instead of ``email.policy.default``.  That
policy decodes each header through ``_header_value_parser``, whose cost grows without
bound on a header made of tens of thousands of RFC 2047 encoded words — one ~1 MB
message grew a process past 20 GB (issue 11.2).  Here every step has a budget:

* the header block, the number of fields and each field's length are capped, and only
  the first ``max_encoded_words`` encoded words of a field are decoded (the rest stay as
  written);
* MIME parts are split by their boundaries without recursion, up to ``max_parts``
  entities and ``max_depth`` levels;
* charsets decode with ``errors="replace"``; an unknown or non-text charset falls back
  to UTF-8 with replacement characters;
* an HTML body over :class:`~sealmail.domain.html_budget.HtmlLimits` is not shown but
  offered as a download.

What is over a limit is never an error: it is listed in ``MailView.problems`` and the
part (or the whole original message) becomes an attachment marked ``undisplayed``.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message

from sealmail.domain import html_budget
from sealmail.domain.html_budget import HtmlLimits


@dataclass(frozen=True, slots=True)
class ViewLimits:
    """How much of one message is read to show it; the README lists these."""

    max_header_bytes: int = 256 * 1024
    max_fields: int = 1000
    max_field_chars: int = 16 * 1024
    max_encoded_words: int = 1000
    max_parts: int = 500
    max_depth: int = 16
    html: HtmlLimits = field(default_factory=HtmlLimits)


LIMITS = ViewLimits()

# Reasons in MailView.problems (stable strings: tests and the API read them).
HEADER_TRUNCATED = "header_truncated"
ENCODED_WORDS_TRUNCATED = "encoded_words_truncated"
TOO_MANY_PARTS = "too_many_parts"
TOO_DEEP = "too_deep"
HTML_TOO_COMPLEX = "html_too_complex"

ORIGINAL_FILENAME = "original-message.eml"
HTML_FILENAME = "message.html"


@dataclass(frozen=True, slots=True)
class ViewPart:
    filename: str
    content_type: str
    data: bytes
    # True when this is content that could not be displayed and is offered as a download.
    undisplayed: bool = False


@dataclass(slots=True)
class MailView:
    fields: list[tuple[str, str]]
    text: str | None = None
    html: str | None = None
    attachments: list[ViewPart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        """The first field called ``name``, encoded words decoded ("" when absent)."""
        return next(self.header_all(name), "")

    def header_all(self, name: str) -> Iterator[str]:
        wanted = name.lower()
        return (value for key, value in self.fields if key == wanted)


# ----------------------------------------------------------------------------------------- headers

# RFC 2047 §2: =?charset?encoding?encoded-text?= (RFC 2231 §5 allows a *language suffix).
_ENCODED_WORD = re.compile(r"=\?([^?\s*]{1,64})(?:\*[^?\s]{0,32})?\?([bBqQ])\?([^?\s]*)\?=")


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """The header block and the body (RFC 5322 §2.1: separated by the first empty line)."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw[2 if raw.startswith(b"\r\n") else 1 :]
    # bytes.find, not a regular expression: several times faster on a megabyte of header.
    found = [(at, len(sep)) for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n") if (at := raw.find(sep)) >= 0]
    if not found:
        return raw, b""
    at, width = min(found)
    return raw[:at], raw[at + width :]


def to_text(data: bytes, charset: str | None) -> str:
    """Decode with replacement characters; an unknown or non-text charset reads as UTF-8."""
    name = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    try:
        return data.decode(name, "replace")
    except (LookupError, UnicodeError, ValueError, TypeError):
        # LookupError also covers bytes-to-bytes codecs such as "zlib" or "base64".
        return data.decode("utf-8", "replace")


def _word_bytes(encoding: str, text: str) -> bytes:
    try:
        if encoding in "bB":
            cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
            if len(cleaned) % 4 == 1:
                cleaned = cleaned[:-1]
            return binascii.a2b_base64(cleaned + "=" * (-len(cleaned) % 4))
        # RFC 2047 §4.2: in the Q encoding "_" is a space.
        return binascii.a2b_qp(text.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return text.encode("ascii", "replace")


def decode_words(value: str, max_words: int) -> tuple[str, bool]:
    """Decode the first ``max_words`` encoded words; the rest stay as written.

    RFC 2047 §6.2: white space between adjacent encoded words is dropped, and their bytes
    join before decoding so a character split across two words survives.
    """
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    pos = count = 0
    truncated = False
    for match in _ENCODED_WORD.finditer(value):
        if count >= max_words:
            truncated = True
            break
        between = value[pos : match.start()]
        charset = match.group(1).lower()
        if not (pending and not between.strip() and charset == pending_charset):
            if pending:
                out.append(to_text(b"".join(pending), pending_charset))
                pending = []
            if not (count and not between.strip()):
                out.append(between)
        pending.append(_word_bytes(match.group(2), match.group(3)))
        pending_charset = charset
        pos = match.end()
        count += 1
    if pending:
        out.append(to_text(b"".join(pending), pending_charset))
    out.append(value[pos:])
    return "".join(out), truncated


def read_fields(head: bytes, limits: ViewLimits, problems: list[str]) -> list[tuple[str, str]]:
    """Unfolded ``(lower-case name, decoded value)`` pairs, within the header budgets."""
    if len(head) > limits.max_header_bytes:
        head = head[: limits.max_header_bytes]
        problems.append(HEADER_TRUNCATED)
    # RFC 6532 allows UTF-8 in header fields; anything else shows as replacement characters.
    lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    raw_fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and raw_fields:
            raw_fields[-1].append(line)
        elif ":" in line:
            if len(raw_fields) >= limits.max_fields:
                problems.append(HEADER_TRUNCATED)
                break
            raw_fields.append([line])
    fields: list[tuple[str, str]] = []
    for chunks in raw_fields:
        name, _, first = chunks[0].partition(":")
        value = " ".join(chunk.strip() for chunk in [first, *chunks[1:]]).strip()
        if len(value) > limits.max_field_chars:
            value = value[: limits.max_field_chars]
            problems.append(HEADER_TRUNCATED)
        decoded, truncated = decode_words(value, limits.max_encoded_words)
        if truncated:
            problems.append(ENCODED_WORDS_TRUNCATED)
        fields.append((name.strip().lower(), decoded))
    return fields


# -------------------------------------------------------------------------------------------- MIME


@dataclass(slots=True)
class _Entity:
    content_type: str
    charset: str | None
    boundary: str | None
    disposition: str | None
    filename: str | None
    encoding: str


def _entity(fields: list[tuple[str, str]]) -> _Entity:
    # compat32's parameter parsing is plain string work; the values are already capped.
    probe = Message()
    for name in ("content-type", "content-disposition"):
        value = next((v for k, v in fields if k == name), None)
        if value is not None:
            probe[name] = value[:4096]
    encoding = next((v for k, v in fields if k == "content-transfer-encoding"), "7bit")
    filename = probe.get_filename()
    return _Entity(
        content_type=probe.get_content_type(),
        charset=probe.get_content_charset(),
        boundary=probe.get_boundary(),
        disposition=probe.get_content_disposition(),
        filename=str(filename) if filename is not None else None,
        encoding=encoding.strip().lower(),
    )


def _children(body: bytes, boundary: str, room: int) -> tuple[list[bytes], bool]:
    """The body parts of a multipart entity (RFC 2046 §5.1.1), at most ``room`` of them."""
    delimiter = re.compile(rb"(?m)^--" + re.escape(boundary.encode("utf-8", "replace")) + rb"(--)?[ \t]*\r?$")
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            end = match.start()
            # The line break before a delimiter belongs to the delimiter.
            end -= 2 if body[end - 2 : end] == b"\r\n" else 1 if body[end - 1 : end] == b"\n" else 0
            parts.append(body[start : max(start, end)])
            if len(parts) >= room:
                return parts, True
        if match.group(1):
            break
        start = match.end() + (2 if body[match.end() : match.end() + 2] == b"\r\n" else 1)
    return parts, False


def _decode_body(body: bytes, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
            if len(cleaned) % 4 == 1:
                cleaned = cleaned[:-1]
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        if encoding == "quoted-printable":
            return binascii.a2b_qp(body)
    except (binascii.Error, ValueError):
        return body
    return body


def view(raw: bytes, limits: ViewLimits = LIMITS) -> MailView:
    """Lay out ``raw`` for display within ``limits``; never raises on malformed mail."""
    problems: list[str] = []
    head, body = split_head(raw)
    result = MailView(read_fields(head, limits, problems), problems=problems)
    # (fields, body, depth, inside multipart/alternative), walked in document order.
    stack: list[tuple[list[tuple[str, str]], bytes, int, bool]] = [(result.fields, body, 0, False)]
    seen = 0
    while stack:
        fields, part_body, depth, alternative = stack.pop()
        seen += 1
        entity = _entity(fields)
        if entity.content_type.startswith("multipart/") and entity.boundary:
            if depth >= limits.max_depth:
                problems.append(TOO_DEEP)
                continue
            room = max(0, limits.max_parts - seen - len(stack))
            children, cut = _children(part_body, entity.boundary, room)
            if cut or not room:
                problems.append(TOO_MANY_PARTS)
            inner = entity.content_type == "multipart/alternative"
            for child in reversed(children):
                child_head, child_body = split_head(child)
                stack.append((read_fields(child_head, limits, problems), child_body, depth + 1, inner))
            continue
        _place(result, entity, _decode_body(part_body, entity.encoding), alternative, limits)
    result.problems = list(dict.fromkeys(problems))
    if set(result.problems) - {HTML_TOO_COMPLEX}:
        # Something of the message was not read: the reader can still take the whole of it.
        result.attachments.append(ViewPart(ORIGINAL_FILENAME, "message/rfc822", raw, undisplayed=True))
    return result


def _place(result: MailView, entity: _Entity, data: bytes, alternative: bool, limits: ViewLimits) -> None:
    """A leaf becomes the text body, the HTML body, or an attachment (like ``get_body``)."""
    inline = entity.disposition != "attachment" and entity.filename is None
    if inline and entity.content_type == "text/plain" and result.text is None:
        result.text = to_text(data, entity.charset)
        return
    if inline and entity.content_type == "text/html" and result.html is None:
        html = to_text(data, entity.charset)
        if html_budget.fits(html, limits.html):
            result.html = html
            return
        result.problems.append(HTML_TOO_COMPLEX)
        result.attachments.append(ViewPart(HTML_FILENAME, "text/html", data, undisplayed=True))
        return
    if alternative and inline and entity.content_type.startswith("text/"):
        return  # another rendering of a body already chosen (RFC 2046 §5.1.4)
    name, _ = decode_words(entity.filename or "attachment", limits.max_encoded_words)
    result.attachments.append(ViewPart(name, entity.content_type, data))


def headers_only(raw: bytes, limits: ViewLimits = LIMITS) -> MailView:
    """Just the header fields (what a list page shows), without reading the body."""
    problems: list[str] = []
    head, _ = split_head(raw)
    return MailView(read_fields(head, limits, problems), problems=problems)
