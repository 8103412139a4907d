"""Messages built to cost a reader more than their size (issue 11.2), shared by tests and bench.

Each builder returns RFC 5322 bytes with a ``Subject`` naming its class, so a test can
find it in the inbox.  Sizes stay under a megabyte or so: what makes them hostile is
their shape, not their length.
"""

from __future__ import annotations

from collections.abc import Callable

SENDER = "dr.smith@clinic.example"


def _head(to: str, subject: str, extra: str = "") -> str:
    return (
        f"From: Dr Smith <{SENDER}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n{extra}"
    )


def encoded_word_bomb(to: str, words: int = 80_000) -> bytes:
    """~1 MB of RFC 2047 encoded words in Subject (the email package's header parser grows past 20 GB)."""
    folded = "\r\n ".join("=?utf-8?q?a?=" for _ in range(words))
    head = _head(to, "ew-bomb " + folded)
    return (head + "Content-Type: text/plain\r\n\r\nThe subject is the attack.\r\n").encode()


def unknown_charset(to: str) -> bytes:
    head = _head(to, "=?x-unknown-999?q?unknown-charset_caf=E9?=")
    return (head + "Content-Type: text/plain; charset=x-unknown-999\r\n\r\n").encode() + b"caf\xe9 ok\r\n"


def broken_charset_bytes(to: str) -> bytes:
    head = _head(to, "broken-bytes")
    body = b"valid start \xff\xfe\xc3\x28 invalid utf-8 \xe2\x82 end\r\n"
    return (head + "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + body


def deep_html(to: str, depth: int = 100_000) -> bytes:
    head = _head(to, "deep-html")
    html = "<p>Top of the message</p>" + "<div>" * depth + "deep" + "</div>" * depth
    return (head + "Content-Type: text/html; charset=utf-8\r\n\r\n" + html + "\r\n").encode()


def many_parts(to: str, parts: int = 10_000) -> bytes:
    head = _head(to, "many-parts", 'Content-Type: multipart/mixed; boundary="b"\r\n')
    body = "--b\r\nContent-Type: text/plain\r\n\r\nThe first part.\r\n" + "".join(
        "--b\r\nContent-Type: application/octet-stream\r\n"
        f'Content-Disposition: attachment; filename="p{i}.bin"\r\n\r\npart {i}\r\n'
        for i in range(parts)
    )
    return (head + "\r\n" + body + "--b--\r\n").encode()


def huge_header(to: str, fields: int = 5_000) -> bytes:
    # 200 KB of subject, folded (RFC 5322 §2.1.1 caps a line at 998 octets, and intake
    # refuses longer lines outright): still one huge field for the reader to bound.
    head = _head(to, "huge-header " + "\r\n ".join("x" * 900 for _ in range(222)))
    extra = "".join(f"X-Filler-{i}: {'y' * 100}\r\n" for i in range(fields))
    return (head + extra + "Content-Type: text/plain\r\n\r\nBody after a huge header.\r\n").encode()


# Name (also the start of each message's Subject, once decoded) -> builder.
CORPUS: dict[str, Callable[[str], bytes]] = {
    "ew-bomb": encoded_word_bomb,
    "unknown-charset": unknown_charset,
    "broken-bytes": broken_charset_bytes,
    "deep-html": deep_html,
    "many-parts": many_parts,
    "huge-header": huge_header,
}
# Classes whose content is over a display limit: the reader is offered a download.
UNDISPLAYED = frozenset({"ew-bomb", "deep-html", "many-parts", "huge-header"})
