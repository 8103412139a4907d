"""The structural limits every submitted message must meet, checked on the raw bytes.

Both intakes (the SMTP gateway and ``POST /v1/messages/raw``) call ``validate_raw``
before Python's ``email`` parser sees the message.  That parser is recursive (a MIME
tree hundreds deep ends in ``RecursionError``) and unbounded (100,000 header fields or a
multi-megabyte folded field are read without complaint), so the checks here are one
bounded, iterative pass over the lines: no recursion, no regular expression that could
backtrack, work linear in the size of the message.

The checks read the MIME tree as that parser will (``_MimeScan``): its line ends, its
header-block ends, its own reading of the Content-Type field.  Every place the two read a
message differently is a message that passes here and is deeper, or has more parts, once
parsed; where they cannot agree exactly this side counts more, never less.

A violation is permanent: the same bytes will fail the same way on every retry, so the
gateway answers 5yz and the API 422, each naming the ``Rule``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Final

__all__ = [
    "MAX_COMMENT_DEPTH",
    "MAX_PARAMETERS",
    "MIME_SINGLE_FIELDS",
    "SINGLE_FIELDS",
    "IntakeLimits",
    "Rule",
    "Violation",
    "validate_raw",
]

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

# RFC 2045 §5-6 and RFC 2183 §2: what one MIME entity is and how it is encoded.  A second
# field is ambiguous: Python's parser (and so DLP) reads the first, other readers the last,
# and what was scanned need not be what the recipient's reader shows.
MIME_SINGLE_FIELDS: Final[frozenset[bytes]] = frozenset(
    {b"content-type", b"content-transfer-encoding", b"content-disposition"}
)
_TOP_SINGLE_FIELDS: Final = SINGLE_FIELDS | MIME_SINGLE_FIELDS
# Fields whose parameters the email package reads (type, boundary, charset, filename).  Its
# parameter splitter rescans the value from the start at every ";" (time quadratic in
# them: 2 s for one 64 KB field, minutes for a part header of a megabyte), so a field may
# have this many; RFC 2231 continuations of a long file name need a handful.
_PARAMETER_FIELDS: Final = frozenset({b"content-type", b"content-disposition"})
MAX_PARAMETERS: Final = 100
# RFC 5322 §3.2.2 lets comments nest; the email package's address and header parsers recurse
# once per level (RecursionError past ~300: a To field of nested "(" was stored, then failed
# every delivery attempt when link tracking re-parsed it).  Real mail nests one or two.
MAX_COMMENT_DEPTH: Final = 32
_COMMENT_TOKENS: Final = re.compile(rb'\\.|[()"]')
# ``email.feedparser.headerRE``: a line the parser takes as part of a header block.
_HEADER_LINE: Final = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")


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
    TOO_MANY_PARAMETERS = "too_many_parameters"


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


def _split_fields(lines: Iterable[bytes]) -> Iterator[tuple[bytes, list[bytes]]]:
    """Each field as (lower-case name, its lines); a line that starts no field has name b""."""
    name = b""
    field: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and field:
            field.append(line)
            continue
        if field:
            yield name, field
        head, colon, _ = line.partition(b":")
        # RFC 5322 §3.6.8: no space before the colon (the obsolete syntax allowed it, and
        # Python's parser ends the header block at such a line, hiding the fields after it).
        name = head.lower() if colon and head else b""
        field = [line]
    if field:
        yield name, field


def _check_header(header: bytes, limits: IntakeLimits) -> Violation | None:
    """The top-level header block: every rule."""
    if len(header) > limits.max_header_bytes:
        return Violation(
            Rule.HEADER_TOO_LARGE,
            f"the header section is {len(header)} octets; at most {limits.max_header_bytes}",
        )
    return _check_fields(header.replace(b"\r\n", b"\n").split(b"\n"), limits, top=True)


def _check_fields(lines: list[bytes], limits: IntakeLimits, *, top: bool) -> Violation | None:
    """A header block's fields; ``top`` adds the rules of the message's own header (RFC 5322
    §3.6 counts, Received) to those of every MIME part's (sizes, RFC 2045 fields)."""
    count = received = size = 0
    seen: set[bytes] = set()
    single = _TOP_SINGLE_FIELDS if top else MIME_SINGLE_FIELDS
    where = "" if top else " of a MIME part"
    for name, field in _split_fields(lines):
        count += 1
        field_size = sum(len(line) + 2 for line in field)
        size += field_size
        if count > limits.max_header_fields:
            return Violation(
                Rule.TOO_MANY_HEADER_FIELDS, f"more than {limits.max_header_fields} header fields{where}"
            )
        if size > limits.max_header_bytes:
            return Violation(
                Rule.HEADER_TOO_LARGE, f"a header section{where} is over {limits.max_header_bytes} octets"
            )
        if not name or any(c <= 32 or c >= 127 for c in name):
            if not top:
                continue  # the email package skips such a line in a part; it defines nothing
            # RFC 5322 §3.6.8: a field name is printable ASCII without colon or space.
            return Violation(Rule.MALFORMED_HEADER, f"header line {count} is not a 'Name: value' field")
        shown = name.decode("ascii")
        longest = max(map(len, field))
        if longest > MAX_LINE_OCTETS:
            return Violation(
                Rule.HEADER_LINE_TOO_LONG,
                f"a line of the {shown} field{where} has {longest} octets; "
                f"fold it to at most {MAX_LINE_OCTETS}",
            )
        if field_size > limits.max_header_field_bytes:
            return Violation(
                Rule.HEADER_FIELD_TOO_LONG,
                f"the {shown} field{where} is {field_size} octets; at most {limits.max_header_field_bytes}",
            )
        if name in single:
            if name in seen:
                return Violation(
                    Rule.DUPLICATE_HEADER, f"the {shown} field occurs more than once{where} (RFC 5322 §3.6)"
                )
            seen.add(name)
        if (
            sum(line.count(b"(") for line in field) > MAX_COMMENT_DEPTH
            and _comment_depth(field) > MAX_COMMENT_DEPTH
        ):
            return Violation(
                Rule.MALFORMED_HEADER,
                f"the {shown} field{where} nests comments more than {MAX_COMMENT_DEPTH} deep",
            )
        if name in _PARAMETER_FIELDS and sum(line.count(b";") for line in field) > MAX_PARAMETERS:
            return Violation(
                Rule.TOO_MANY_PARAMETERS,
                f"the {shown} field{where} has more than {MAX_PARAMETERS} parameters",
            )
        if top and name == b"received":
            received += 1
            if received > limits.max_received:
                return Violation(
                    Rule.ROUTING_LOOP,
                    f"more than {limits.max_received} Received fields: a mail loop (RFC 5321 §6.3)",
                )
    return None


def _comment_depth(field: list[bytes]) -> int:
    """How deep the field's comments nest, quoted-strings and quoted-pairs skipped (RFC 5322
    §3.2.1-3.2.4; inside a comment a quote is text)."""
    depth = deepest = 0
    quoted = False
    for token in _COMMENT_TOKENS.finditer(b"".join(field)):
        mark = token.group()
        if len(mark) == 2:
            continue  # a quoted-pair
        if quoted:
            quoted = mark != b'"'
        elif mark == b"(":
            depth += 1
            deepest = max(deepest, depth)
        elif mark == b")":
            depth = max(0, depth - 1)
        elif depth == 0:
            quoted = True
    return deepest


@dataclass(slots=True)
class _Entity:
    """An open multipart: its delimiter line, how deep it sits, and whether it is a digest."""

    delimiter: bytes
    depth: int
    # RFC 2046 §5.1.5: in multipart/digest a part without Content-Type is message/rfc822.
    digest: bool


def _media(lines: list[bytes], default: str) -> tuple[str, bytes | None]:
    """(content type, delimiter line or None) of one header block, as the email package reads
    them: the first Content-Type field, its parameters by the package's own parser (RFC 2231
    continuations, quoting, an unusable type read as text/plain), ``default`` without one.

    A scanner of its own read these differently (the last field, ``xboundary=``, a boundary
    cut at 200 characters, ``boundary*0=``), and each difference let a message nest deeper
    or hold more parts than the limits once the parser read it.  ``_check_fields`` has
    bounded the field (its parameters are read in time quadratic in its semicolons).
    """
    entity = Message()
    entity.set_default_type(default)
    for name, field in _split_fields(lines):
        if name == b"content-type":
            # compat32's value: the first line after the colon, the folds with their line ends.
            value = b"\r\n".join(field).split(b":", 1)[1].lstrip(b" \t")
            entity["Content-Type"] = value.decode("ascii", "surrogateescape")
            break
    ctype = entity.get_content_type()
    boundary = entity.get_boundary() if entity.get_content_maintype() == "multipart" else None
    if boundary is None:
        return ctype, None
    try:
        return ctype, b"--" + boundary.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        # A boundary decoded to non-ASCII text (RFC 2231 charset) matches no line.
        return ctype, None


def _top_header_lines(raw: bytes) -> list[bytes]:
    """The lines ``_check_mime``'s walk reads as the top-level header block: those of
    ``raw.splitlines()`` (CRLF, CR or LF, as the parser splits) before the first empty one,
    from the bytes up to that empty line only."""
    # An empty line is a line end right after another: LF LF, LF CR or CR CR (CR LF is one
    # end, and CRLF CRLF holds LF CR).  Cut after the first end of such a pair: a CRLF is
    # never split there, so these lines are the whole message's first ones.
    found = [at for at in (raw.find(b"\n\n"), raw.find(b"\n\r"), raw.find(b"\r\r")) if at >= 0]
    lines = (raw[: min(found) + 1] if found else raw).splitlines()
    end = lines.index(b"") if b"" in lines else len(lines)
    return lines[:end]


def _check_mime(raw: bytes, limits: IntakeLimits) -> Violation | None:
    """Depth and part count of the MIME tree, by an iterative scan of boundary lines."""
    media, delimiter = _media(_top_header_lines(raw), "text/plain")
    if delimiter is None and not media.startswith("message/"):
        # A single part (most mail): its header block is the whole tree, and no later line
        # can be a delimiter; the body is neither copied nor split.
        if 1 > limits.max_mime_depth:
            return Violation(Rule.MIME_TOO_DEEP, f"MIME parts nest more than {limits.max_mime_depth} deep")
        return None
    return _MimeScan(raw, limits).run()


class _MimeScan:
    """The MIME tree walked the way Python's ``email.feedparser`` walks it, without recursion.

    Lines end at CRLF, CR or LF (the parser's ``NLCRE``); a header block ends at its empty
    line or at the first line that is no header line (``headerRE``), which then starts the
    body; a delimiter of any enclosing multipart ends the part it appears in.  ``open_`` is
    the stack of enclosing multiparts; a ``message/*`` part's body starts with one more
    header block (RFC 2046 §5.2.1), one level deeper.  Where the two could differ, this
    errs towards more depth and more parts, never fewer.
    """

    def __init__(self, raw: bytes, limits: IntakeLimits) -> None:
        self.lines = raw.splitlines()
        self.limits = limits
        self.open_: list[_Entity] = []
        self.parts = 0
        self.index = 0

    def run(self) -> Violation | None:
        depth, default, top = 1, "text/plain", True
        while True:
            found, media, delimiter = self._block(depth, default, top)
            if found is not None:
                return found
            top = False
            if delimiter is not None:
                self.open_.append(_Entity(delimiter, depth, media == "multipart/digest"))
            elif media == "message/delivery-status":
                found = self._status_blocks(depth + 1)
                if found is not None:
                    return found
            elif media.startswith("message/"):
                depth += 1
                default = "text/plain"
                continue
            nxt = self._next_part()
            if isinstance(nxt, Violation) or nxt is None:
                return nxt
            depth, default = nxt

    def _block(self, depth: int, default: str, top: bool) -> tuple[Violation | None, str, bytes | None]:
        """Read one header block: the violation it makes, else its type and delimiter."""
        lines, start = self.lines, self.index
        while self.index < len(lines):
            line = lines[self.index]
            if _HEADER_LINE.match(line) is None or self._delimiter(line) is not None:
                break
            self.index += 1
        block = lines[start : self.index]
        if self.index < len(lines) and lines[self.index] == b"":
            self.index += 1  # the empty line that ends the block
        if depth > self.limits.max_mime_depth:
            too_deep = Violation(
                Rule.MIME_TOO_DEEP, f"MIME parts nest more than {self.limits.max_mime_depth} deep"
            )
            return too_deep, "", None
        # The message's own header block has been checked in full already.
        found = None if top else _check_fields(block, self.limits, top=False)
        if found is not None:
            return found, "", None
        media, delimiter = _media(block, default)
        return None, media, delimiter

    def _delimiter(self, line: bytes) -> tuple[int, bool] | None:
        """(level, closing) when ``line`` delimits an open multipart, innermost first."""
        if not line.startswith(b"--") or not self.open_:
            return None
        line = line.rstrip(b" \t")
        for level in range(len(self.open_) - 1, -1, -1):
            delimiter = self.open_[level].delimiter
            if line == delimiter:
                return level, False
            if line == delimiter + b"--":
                return level, True
        return None

    def _next_part(self) -> tuple[int, str] | Violation | None:
        """Skip to the next part's header block: (its depth, its default type); None at the end."""
        lines = self.lines
        while self.open_ and self.index < len(lines):
            found = self._delimiter(lines[self.index])
            self.index += 1
            if found is None:
                continue
            level, closing = found
            if closing:
                del self.open_[level:]
                continue
            del self.open_[level + 1 :]
            self.parts += 1
            if self.parts > self.limits.max_mime_parts:
                return Violation(
                    Rule.TOO_MANY_MIME_PARTS, f"more than {self.limits.max_mime_parts} MIME parts"
                )
            entity = self.open_[level]
            return entity.depth + 1, "message/rfc822" if entity.digest else "text/plain"
        # No multipart is open, so no later line can be a delimiter.
        return None

    def _status_blocks(self, depth: int) -> Violation | None:
        """A message/delivery-status body (RFC 3464 §2.1): the parser makes each block of
        fields a part of its own, one level deeper, and would descend into a block's type."""
        lines = self.lines
        in_block = False
        while self.index < len(lines):
            line = lines[self.index]
            if self._delimiter(line) is not None:
                break
            self.index += 1
            if line == b"":
                in_block = False
                continue
            if not in_block:
                in_block = True
                self.parts += 1
                if self.parts > self.limits.max_mime_parts:
                    return Violation(
                        Rule.TOO_MANY_MIME_PARTS, f"more than {self.limits.max_mime_parts} MIME parts"
                    )
                if depth > self.limits.max_mime_depth:
                    return Violation(
                        Rule.MIME_TOO_DEEP, f"MIME parts nest more than {self.limits.max_mime_depth} deep"
                    )
            if line[:13].lower() == b"content-type:":
                # A status field block has no Content-Type (RFC 3464 §2.2, §2.3); one that
                # declares a structure would be parsed as one.
                return Violation(
                    Rule.MALFORMED_HEADER, "a message/delivery-status block has a Content-Type field"
                )
        return None
