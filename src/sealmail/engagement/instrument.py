"""Rewrite a message for tracking: links through the click redirector, a pixel at the end.

Pure functions over bytes.  The MIME tree is parsed with the stdlib ``email`` package;
only ``text/html`` leaves that are not attachments are touched, whatever their transfer
encoding (quoted-printable, base64, 7/8-bit) and however deep in multipart/alternative,
related or mixed they sit.  Left alone on purpose:

* ``text/plain``: rewriting bare URLs in text shows the reader a long opaque link instead
  of the address they know, which teaches exactly the habit phishing relies on; the HTML
  alternative is what nearly every tracked reader renders.
* ``message/rfc822`` (a forwarded message is someone else's content), ``multipart/signed``
  and ``multipart/encrypted`` (changing a signed part breaks its signature).
* links that are not absolute http(s) (``mailto:``, ``tel:``, ``#anchors``, relative), the
  links ``keep`` recognises (our own unsubscribe and portal pages: a scanner "clicking"
  those must never count, and they must work unchanged), and any ``<a>`` carrying
  ``data-sealmail-notrack``.

The HTML itself is tokenised by :class:`html.parser.HTMLParser`, so tags inside comments,
scripts or attribute values are never mistaken for links; only the ``href`` value of each
real ``<a>``/``<area>`` start tag is replaced, at the offset the parser reports, and the
rest of the document is kept byte for byte.  A part whose charset Python does not know
is left as it is.
"""

from __future__ import annotations

import base64
import codecs
import email.quoprimime
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from urllib.parse import urlsplit

from sealmail.domain import mail_view
from sealmail.domain.html_feed import feed_document

NOTRACK_ATTR = "data-sealmail-notrack"
_SKIP_SUBTREES = frozenset({"multipart/signed", "multipart/encrypted"})
# One attribute of a start tag, scanned left to right so a quoted value is consumed whole
# (``title=" href=x"`` holds no href).
_ATTR = re.compile(r"""[\s/]*(?P<name>[^\s/>"'=][^\s/>=]*)(?:\s*=\s*(?P<value>"[^"]*"|'[^']*'|[^\s>]*))?""")
_TAG_NAME = re.compile(r"<[A-Za-z][^\s/>]*")


@dataclass
class Rewrite:
    raw: bytes
    urls: list[str] = field(default_factory=list)  # original URL of each tracked link, by index
    changed: bool = False


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[tuple[int, int], str, str]] = []  # (pos, tag text, href)
        self.body_end: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("a", "area"):
            return
        names = {name for name, _ in attrs}
        if NOTRACK_ATTR in names:
            return
        # Browsers follow the first href of a tag; the rewrite replaces that one too.
        href = next((v for n, v in attrs if n == "href"), None)
        text = self.get_starttag_text()
        if href is not None and text is not None:
            self.links.append((self.getpos(), text, href))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self.getpos()


def _links(html: str) -> _Links:
    # One linear pass (html_feed.py): links inside an unending construct are not links.
    parser = _Links()
    feed_document(parser, html)
    return parser


def trackable(url: str) -> bool:
    parts = urlsplit(url.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def _offsets(text: str) -> list[int]:
    # HTMLParser counts lines by "\n" only and columns in characters after it.
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n")
    return starts


def _replace_href(tag: str, new_url: str) -> str | None:
    m = _TAG_NAME.match(tag)
    if m is None:
        return None
    pos = m.end()
    while pos < len(tag):
        attr = _ATTR.match(tag, pos)
        if attr is None or attr.end() == pos:
            return None
        if attr.group("name").lower() == "href" and attr.group("value") is not None:
            start, end = attr.span("value")
            return f'{tag[:start]}"{new_url}"{tag[end:]}'
        pos = attr.end()
    return None


def rewrite_html(
    html: str,
    *,
    link_url: Callable[[str], str | None],
    pixel_url: str | None,
) -> tuple[str, bool]:
    """The document with tracked links and the pixel; ``link_url`` maps an original URL to
    its tracking URL, or ``None`` to keep it.  Returns (html, changed)."""
    parser = _links(html)
    starts = _offsets(html)
    edits: list[tuple[int, int, str]] = []
    for (line, col), tag, href in parser.links:
        offset = starts[line - 1] + col
        if html[offset : offset + len(tag)] != tag:
            continue  # pragma: no cover — the parser's position is the tag's start
        target = link_url(href)
        if target is None:
            continue
        new_tag = _replace_href(tag, target)
        if new_tag is not None:
            edits.append((offset, offset + len(tag), new_tag))
    if pixel_url is not None:
        img = (
            f'<img src="{pixel_url}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0">'
        )
        if parser.body_end is not None:
            line, col = parser.body_end
            at = starts[line - 1] + col
        else:
            at = len(html)
        edits.append((at, at, img))
    if not edits:
        return html, False
    out: list[str] = []
    last = 0
    for start, end, new in sorted(edits, key=lambda e: (e[0], e[1])):
        out.append(html[last:start])
        out.append(new)
        last = end
    out.append(html[last:])
    return "".join(out), True


def _html_parts(part: Message) -> Iterator[Message]:
    ctype = part.get_content_type()
    if ctype in _SKIP_SUBTREES or part.get_content_maintype() == "message":
        return
    if part.is_multipart():
        for child in part.get_payload():
            if isinstance(child, Message):
                yield from _html_parts(child)
        return
    if ctype == "text/html" and part.get_content_disposition() != "attachment":
        yield part


def _set_body(part: Message, data: bytes, cte: str) -> None:
    if cte == "base64":
        encoded = base64.encodebytes(data).decode("ascii")
    else:
        # Quoted-printable keeps lines short however long a rewritten line became
        # (RFC 5322 §2.1.1: 998 characters at most) and survives any 7-bit hop.
        cte = "quoted-printable"
        encoded = email.quoprimime.body_encode(data.decode("latin-1"), eol="\n")
        if not encoded.endswith("\n"):
            encoded += "\n"
    if "Content-Transfer-Encoding" in part:
        part.replace_header("Content-Transfer-Encoding", cte)
    else:
        part["Content-Transfer-Encoding"] = cte
    part.set_payload(encoded)


def instrument(
    raw: bytes,
    *,
    track_link: Callable[[int], str] | None,
    pixel_url: str | None,
    keep: Callable[[str], bool] = lambda _url: False,
) -> Rewrite:
    """Rewrite every HTML part of ``raw``.

    ``track_link(i)`` gives the tracking URL of link ``i`` (``None``: no click tracking);
    links are numbered by first appearance, and the same URL twice shares one number.
    """
    if mail_view.view(raw).problems:
        # Re-serializing makes the email package parse every header field, which costs
        # minutes on an encoded-word bomb (issue 11.2): mail over the display limits is
        # delivered as submitted, untracked.
        return Rewrite(raw)
    try:
        return _rewrite(raw, track_link, pixel_url, keep)
    except RecursionError:
        # A field the header registry cannot parse (comments nested hundreds deep, which
        # intake refuses but mail stored before may have): as submitted, untracked, rather
        # than a failed delivery attempt every retry.
        return Rewrite(raw)


def _rewrite(
    raw: bytes, track_link: Callable[[int], str] | None, pixel_url: str | None, keep: Callable[[str], bool]
) -> Rewrite:
    msg = BytesParser(policy=policy.SMTP).parsebytes(raw)
    urls: list[str] = []
    index: dict[str, int] = {}

    def link_url(href: str) -> str | None:
        if track_link is None or not trackable(href) or keep(href.strip()):
            return None
        url = href.strip()
        if url not in index:
            index[url] = len(urls)
            urls.append(url)
        return track_link(index[url])

    changed = False
    for part in _html_parts(msg):
        charset = part.get_content_charset() or "us-ascii"
        try:
            codecs.lookup(charset)
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            html = data.decode(charset, "surrogateescape")
            new_html, did = rewrite_html(html, link_url=link_url, pixel_url=pixel_url)
            if not did:
                continue
            new_data = new_html.encode(charset, "surrogateescape")
        except (LookupError, UnicodeError):
            continue
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        _set_body(part, new_data, cte)
        changed = True
    if not changed:
        return Rewrite(raw)
    assert isinstance(msg, EmailMessage)
    return Rewrite(msg.as_bytes(policy=policy.SMTP), urls, True)


def drop_fields(raw: bytes, names: frozenset[str]) -> bytes:
    """``raw`` without the header fields named (lower-case), folded lines included."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return raw
    head, rest = raw[: end + 2], raw[end + 2 :]
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower().decode("latin-1")
        dropping = name in names
        if not dropping:
            kept.append(line)
    return b"".join(kept) + rest
