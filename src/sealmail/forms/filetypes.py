"""File kinds a form upload may be, recognised by their content (magic bytes).

The browser's Content-Type and the file name are the submitter's word; the first bytes
are what a viewer will actually parse.  A file is accepted only when its content is one
of the kinds its field allows, and it is delivered with the type its content proves.
"""

from __future__ import annotations

import enum


class FileKind(enum.StrEnum):
    PDF = "pdf"
    PNG = "png"
    JPEG = "jpeg"
    GIF = "gif"
    TIFF = "tiff"
    WEBP = "webp"


MEDIA_TYPES: dict[FileKind, str] = {
    FileKind.PDF: "application/pdf",
    FileKind.PNG: "image/png",
    FileKind.JPEG: "image/jpeg",
    FileKind.GIF: "image/gif",
    FileKind.TIFF: "image/tiff",
    FileKind.WEBP: "image/webp",
}

EXTENSIONS: dict[FileKind, str] = {
    FileKind.PDF: ".pdf",
    FileKind.PNG: ".png",
    FileKind.JPEG: ".jpg",
    FileKind.GIF: ".gif",
    FileKind.TIFF: ".tif",
    FileKind.WEBP: ".webp",
}


def sniff(data: bytes) -> FileKind | None:
    """The kind ``data`` starts like, or None (each signature from the format's spec)."""
    if data.startswith(b"%PDF-"):  # ISO 32000-1 §7.5.2 header
        return FileKind.PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n"):  # PNG §5.2 signature
        return FileKind.PNG
    if data.startswith(b"\xff\xd8\xff"):  # JPEG SOI followed by a marker
        return FileKind.JPEG
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return FileKind.GIF
    if data[:4] in (b"II*\x00", b"MM\x00*"):  # TIFF 6.0 §2 byte order + 42
        return FileKind.TIFF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return FileKind.WEBP
    return None
