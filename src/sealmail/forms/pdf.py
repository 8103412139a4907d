"""A plain-text PDF writer: lines of text on A4 pages, nothing else.

The delivered submission carries a PDF rendering for people whose tools print or file
PDFs; it needs only text, so a few dozen lines of ISO 32000-1 (one Type1 Helvetica
font, WinAnsi encoding, a content stream per page) replace a PDF library.  Characters
outside Latin-1 are replaced by ``?``: the JSON attachment keeps the exact values.
"""

from __future__ import annotations

import textwrap

PAGE_W, PAGE_H = 595, 842  # A4 in points
MARGIN = 56
LEADING = 14
WIDTH_CHARS = 90
LINES_PER_PAGE = (PAGE_H - 2 * MARGIN) // LEADING


def _escape(line: str) -> bytes:
    data = line.encode("latin-1", "replace")
    # ISO 32000-1 §7.3.4.2: backslash and parentheses are escaped in a literal string.
    return data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _wrap(text: str) -> list[str]:
    lines: list[str] = []
    for raw in text.splitlines() or [""]:
        clean = "".join(ch if ch.isprintable() else " " for ch in raw)
        lines.extend(textwrap.wrap(clean, WIDTH_CHARS, replace_whitespace=False) or [""])
    return lines


def render(text: str) -> bytes:
    lines = _wrap(text)
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    objects: list[bytes] = []
    font_ref, pages_ref = 3, 2
    kids: list[int] = []
    for page in pages:
        stream = b"BT /F1 10 Tf %d TL %d %d Td " % (LEADING, MARGIN, PAGE_H - MARGIN)
        stream += b"".join(b"(" + _escape(line) + b") Tj T* " for line in page) + b"ET"
        content_ref = 4 + len(objects)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page_ref = 4 + len(objects)
        objects.append(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R >> >> "
            b"/Contents %d 0 R >>" % (pages_ref, PAGE_W, PAGE_H, font_ref, content_ref)
        )
        kids.append(page_ref)
    head = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % len(kids),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(head + objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref)
    return bytes(out)
