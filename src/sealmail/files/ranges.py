"""HTTP byte ranges (RFC 9110 §14) for resumable downloads: one range per request.

Pure functions over the header value and the representation size.  Multi-range requests
are answered with the whole file (RFC 9110 §14.2 lets a server ignore ``Range``); a
downloader resuming a transfer only ever asks for one range.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealmail.domain.numerals import saturating


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


class Unsatisfiable(Exception):
    """The range cannot be served from this representation: answer 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to serve, ``None`` for the whole representation, or ``Unsatisfiable``.

    ``bytes=a-b``, ``bytes=a-`` and the suffix form ``bytes=-n`` are understood; ``b`` past
    the end is clipped (§14.1.2).  A first position at or past the end, ``b < a`` or a
    malformed number is refused with 416 rather than silently served whole, so a resuming
    client with a wrong offset learns it at once.
    """
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None  # another unit: §14.2 says ignore it
    if "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    # Positions read as ASCII digits, saturated: "²" is no number, and one of 5,000 digits
    # is past any end, which §14.1.2 clips like any other.
    start = saturating(first, size) if first else None
    end = saturating(last, max(size - 1, 0)) if last else None
    if not dash or (first and start is None) or (last and end is None):
        raise Unsatisfiable(header)
    if start is None:
        suffix = saturating(last, size) if last else None
        if not suffix or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(size - suffix, size - 1)
    end = size - 1 if end is None else end
    if start >= size or end < start:
        raise Unsatisfiable(header)
    return ByteRange(start, end)


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """``If-Range`` (§13.1.5): honour the range only when the client's copy is ours."""
    return if_range is None or if_range.strip() == etag
