"""Turn an RFC 5322 message into the text parts the DLP scan reads.

Subject, ``text/plain`` and ``text/html`` bodies (HTML rendered to text with the stdlib parser,
scripts and styles dropped), attachment file names, and the text of attachments that are
``text/*``, PDF (pypdf) or DOCX (zip + WordprocessingML, no dependency).  Anything else — images,
archives, encrypted or broken PDFs, oversized or suspicious DOCX — is listed in
``ExtractResult.unscanned`` so the tenant policy decides what an unreadable attachment means.

Nothing here logs, and no exception raised from here carries message content: a malformed
attachment becomes an ``unscanned`` location, never an error with its bytes in the message.
"""

from __future__ import annotations

import codecs
import copy
import email
import email.policy
import io
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from email.parser import BytesHeaderParser
from html.parser import HTMLParser
from xml.parsers import expat

from sealmail.dlp.rules import MAX_PART_CHARS, TextPart
from sealmail.domain import mail_view
from sealmail.domain.html_feed import feed_document
from sealmail.domain.message import header_block

# Linear to decode; far above any real field, so the scan reads what the reader would see.
_MAX_ENCODED_WORDS = 100_000


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Bounds that keep one hostile message from costing more than a normal one."""

    # Longer texts are cut here and their location reported unscanned (see rules.scan).
    max_part_chars: int = MAX_PART_CHARS
    # HTML is parsed up to this many characters (markup costs microseconds a tag: 25 MB of
    # "<p>1 Main St</p>" took 11 s to parse); a longer document is reported unscanned.
    max_html_chars: int = 2 * MAX_PART_CHARS
    # Zip-bomb guard: total uncompressed WordprocessingML read from one DOCX.
    max_docx_xml_bytes: int = 20 * 1024 * 1024
    max_pdf_pages: int = 500
    max_attachments: int = 100


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """Text parts to scan, and the locations that could not be read (fully)."""

    parts: list[TextPart] = field(default_factory=list)
    unscanned: list[str] = field(default_factory=list)


DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DOCX_XML = re.compile(r"word/(?:document|header\d{0,3}|footer\d{0,3}|footnotes|endnotes|comments)\.xml")


def extract(raw: bytes, limits: ExtractLimits | None = None, head: Message | None = None) -> ExtractResult:
    """Parse ``raw`` (an RFC 5322 message) into :class:`TextPart`s; never raises on bad input.

    ``head``: the message's header block already parsed with compat32 (intake's
    ``parse_head``), fields prepended to ``raw`` since aside; it is not changed.
    """
    limits = limits or ExtractLimits()
    message = parse(raw, head)
    builder = _Builder(limits)
    builder.add("subject", _header(message, "subject"))
    body_index = {"text": 0, "html": 0}
    attachment_index = 0
    embedded_index = 0
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            # A forwarded message: its subject is content too (its body parts follow in walk()).
            inner = part.get_payload(0) if part.is_multipart() else None
            if isinstance(inner, Message):
                builder.add(f"message[{embedded_index}]:subject", _header(inner, "subject"))
            embedded_index += 1
            continue
        if part.is_multipart():
            continue
        filename = _decoded(part.get_filename())
        if (
            part.get_content_disposition() != "attachment"
            and filename is None
            and content_type
            in (
                "text/plain",
                "text/html",
            )
        ):
            kind = "text" if content_type == "text/plain" else "html"
            n = body_index[kind]
            body_index[kind] += 1
            text, complete = _decode_text(part), True
            if kind == "html":
                text, complete = _bounded_html_text(text, limits)
            builder.add(kind if n == 0 else f"{kind}[{n}]", text, complete)
            continue
        location = f"attachment[{attachment_index}]" + (f":{filename}" if filename else "")
        if filename:
            builder.add(f"filename[{attachment_index}]", filename)
        attachment_index += 1
        if attachment_index > limits.max_attachments:
            builder.unscanned.append(location)
            continue
        extracted = _attachment_text(part, content_type, filename or "", limits)
        if extracted is None:
            builder.unscanned.append(location)
        else:
            builder.add(location, *extracted)
    return ExtractResult(builder.parts, builder.unscanned)


def parse(raw: bytes, parsed_head: Message | None = None) -> Message:
    """``raw`` as ``email.message_from_bytes`` with compat32 parses it, for less.

    compat32: the default policy's header registry costs more than every detector together
    on a small message, and only Subject and file names are needed decoded.  For a message
    that is not multipart (most mail), the parser's only work past the header block is to
    split the body into lines and join them again as the payload — most of its cost on a 5 KB
    message — so the header block alone is parsed and the rest of the bytes set as the
    payload, which is the same Message.  Anything unusual (a header block the parser would
    end elsewhere, multipart or message/* types) takes the full parser.  ``parsed_head``: the
    block as ``BytesHeaderParser`` parsed it, possibly without fields prepended since (they
    are not content); a copy takes the payload.
    """
    block = header_block(raw)
    if len(block) < len(raw):
        if parsed_head is not None and parsed_head.get_payload() == "":
            head = copy.copy(parsed_head)
        else:
            head = BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
        if (
            head.get_content_maintype() not in ("multipart", "message")
            and head.get_payload() == ""
            and not any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in head.defects)
        ):
            # BytesParser decodes ASCII with surrogateescape, byte for byte.
            head.set_payload(raw[len(block) :].decode("ascii", "surrogateescape"))
            return head
    return email.message_from_bytes(raw, policy=email.policy.compat32)


class _Builder:
    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self.parts: list[TextPart] = []
        self.unscanned: list[str] = []

    def add(self, location: str, text: str, complete: bool = True) -> None:
        if not complete or len(text) > self.limits.max_part_chars:
            text = text[: self.limits.max_part_chars]
            self.unscanned.append(location)
        if text.strip():
            self.parts.append(TextPart(location, text))


def _header(message: Message, name: str) -> str:
    return _decoded(message.get(name)) or ""


def _decoded(value: object) -> str | None:
    """A header value with RFC 2047 encoded-words decoded.

    ``email.header.decode_header`` takes seconds on a field of tens of thousands of encoded
    words (issue 11.2); the bounded decoder is linear, and words past the cap stay as
    written, which the scan still reads.
    """
    if value is None:
        return None
    return mail_view.decode_words(str(value), _MAX_ENCODED_WORDS)[0]


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _decode_text(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return _payload(part).decode(charset, errors="replace")


# An extractor returns the text and whether it is complete, or None when it cannot read the file.
_Extracted = tuple[str, bool]


def _attachment_text(
    part: Message, content_type: str, filename: str, limits: ExtractLimits
) -> _Extracted | None:
    name = filename.lower()
    extractor: Callable[[bytes, ExtractLimits], _Extracted | None] | None = None
    if content_type == "application/pdf" or name.endswith(".pdf"):
        extractor = _pdf_text
    elif content_type == DOCX_TYPE or name.endswith(".docx"):
        extractor = _docx_text
    elif content_type.startswith("text/"):
        text = _decode_text(part)
        if content_type == "text/html" or name.endswith((".html", ".htm")):
            return _bounded_html_text(text, limits)
        return text, True
    if extractor is None:
        return None
    return extractor(_payload(part), limits)


# --------------------------------------------------------------------------------------------- HTML

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "tr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "table",
        "ul",
        "ol",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "hr",
        "dd",
        "dt",
        "address",
        "title",
    }
)
_SKIP_TAGS = frozenset({"script", "style", "template", "noscript"})


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def _bounded_html_text(html: str, limits: ExtractLimits) -> tuple[str, bool]:
    """The visible text of at most ``max_html_chars`` of ``html``, and whether that was all."""
    return html_to_text(html[: limits.max_html_chars]), len(html) <= limits.max_html_chars


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: block elements become line breaks, cells tabs."""
    parser = _HtmlText()
    # Linear whatever the markup (html_feed.py); text after an unending construct is kept.
    feed_document(parser, html)
    return "".join(parser.out)


# ---------------------------------------------------------------------------------------------- PDF


def _pdf_text(data: bytes, limits: ExtractLimits) -> _Extracted | None:
    """Text of a PDF via pypdf, or None when it is missing, encrypted or unreadable."""
    try:
        # Imported on first use: pypdf is only needed when a message carries a PDF, and without
        # it PDFs are reported unscanned rather than breaking the scan.
        from pypdf import PdfReader
    except ImportError:
        return None
    try:
        reader = PdfReader(io.BytesIO(data))
        # Many PDFs are encrypted only with an owner password (printing restrictions); the
        # empty user password opens those.  Anything else stays unscanned.
        if reader.is_encrypted and not reader.decrypt(""):
            return None
        chunks: list[str] = []
        size = 0
        pages = len(reader.pages)
        for index in range(min(pages, limits.max_pdf_pages)):
            chunk = reader.pages[index].extract_text() or ""
            chunks.append(chunk)
            size += len(chunk)
            if size > limits.max_part_chars:
                break
        return "\n".join(chunks), pages <= limits.max_pdf_pages
    except Exception:  # noqa: BLE001 - pypdf raises many types on hostile input; unreadable = unscanned
        return None


# --------------------------------------------------------------------------------------------- DOCX


class _UnsafeXml(Exception):
    """A DOCX part declared a DTD or entity (billion-laughs style expansion)."""


def _docx_text(data: bytes, limits: ExtractLimits) -> _Extracted | None:
    """Text of a DOCX from its WordprocessingML parts, or None when unreadable or too large.

    Zip-bomb guard: the declared uncompressed sizes must fit ``max_docx_xml_bytes`` and each
    read is capped at the remaining budget, so a lying header cannot inflate memory either.
    """
    budget = limits.max_docx_xml_bytes
    texts: list[str] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [info for info in archive.infolist() if _DOCX_XML.fullmatch(info.filename)]
            if not any(info.filename == "word/document.xml" for info in members):
                return None
            members.sort(key=lambda info: info.filename != "word/document.xml")
            if sum(info.file_size for info in members) > budget:
                return None
            for info in members:
                with archive.open(info) as stream:
                    xml = stream.read(budget + 1)
                if len(xml) > budget:
                    return None
                budget -= len(xml)
                texts.append(_wordml_text(xml))
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        zlib.error,
        OSError,
        EOFError,
        RuntimeError,
        NotImplementedError,
        ValueError,
        expat.ExpatError,
        _UnsafeXml,
    ):
        return None
    return "\n".join(texts), True


def _wordml_text(xml: bytes) -> str:
    out: list[str] = []
    in_text = False
    # Inside a table cell a paragraph ends with a space, and the cell with a tab, so a row
    # reads "Member ID: \tXKH448120001" like the rendered table does.
    cell_depth = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal in_text, cell_depth
        namespace, _, local = name.rpartition(" ")
        if namespace != _W_NS:
            return
        if local == "t":
            in_text = True
        elif local == "tc":
            cell_depth += 1
        elif local == "tab":
            out.append("\t")
        elif local in ("br", "cr"):
            out.append("\n")

    def end(name: str) -> None:
        nonlocal in_text, cell_depth
        namespace, _, local = name.rpartition(" ")
        if namespace != _W_NS:
            return
        if local == "t":
            in_text = False
        elif local == "p":
            out.append(" " if cell_depth else "\n")
        elif local == "tc":
            cell_depth = max(0, cell_depth - 1)
            out.append("\t")
        elif local == "tr":
            out.append("\n")

    def data(chars: str) -> None:
        if in_text:
            out.append(chars)

    def refuse(*_args: object) -> None:
        raise _UnsafeXml

    parser = expat.ParserCreate(namespace_separator=" ")
    # WordprocessingML never needs a DTD; refusing one rules out entity expansion attacks.
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.Parse(xml, True)
    return "".join(out)


__all__ = ["DOCX_TYPE", "ExtractLimits", "ExtractResult", "extract", "html_to_text", "parse"]
