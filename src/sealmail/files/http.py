"""HTTP adapter helpers shared by the API and the portal: filenames and ranged downloads.

The response streams: the first needed chunk is decrypted and authenticated *before*
the status line goes out (so a damaged file answers with an error, not a 200), and every
later chunk is decrypted only when the client is ready for it.  A chunk that fails later
aborts the connection mid-body; the client sees a short, failed transfer and never a
byte that was not authenticated.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from urllib.parse import unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from sealmail.errors import PayloadTooLarge
from sealmail.files.ranges import ByteRange, Unsatisfiable, if_range_allows, parse_range
from sealmail.files.reading import OpenedFile
from sealmail.files.service import Upload
from sealmail.web.downloads import (
    disposition as disposition,  # re-exported: every download names its file there
)

_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")


def clean_filename(name: str) -> str:
    """The last path segment, printable, without quotes or line breaks, at most 255 chars."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable() and c not in '"\r\n')[:255].strip()
    return cleaned if cleaned not in ("", ".", "..") else "file"


def filename_from_disposition(header: str | None) -> str | None:
    """``filename*`` (RFC 5987/8187 ext-value) wins over ``filename`` (RFC 6266 §4.3)."""
    if not header:
        return None
    plain: str | None = None
    for param in header.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "filename*":
            charset, _, rest = value.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                return unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
        if name == "filename":
            plain = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return plain


def media_type(value: str | None) -> str:
    """A well-formed ``type/subtype`` (parameters dropped), else application/octet-stream."""
    bare = (value or "").split(";", 1)[0].strip().lower()
    return bare if _TYPE.match(bare) else "application/octet-stream"


def _first_and_rest(it: Iterator[bytes]) -> tuple[bytes | None, Iterator[bytes]]:
    first = next(it, None)
    return first, it


async def ranged_download(
    opened: OpenedFile, range_header: str | None, if_range: str | None
) -> tuple[Response, ByteRange | None]:
    """200 or 206 streaming the plaintext, or 416; also the range served (None = whole).

    Raises ``FileUnreadable`` before any byte is sent when the first chunk fails.
    """
    base = {
        "Accept-Ranges": "bytes",
        "ETag": opened.etag,
        "Content-Disposition": disposition(opened.filename),
    }
    try:
        rng = parse_range(range_header, opened.size) if if_range_allows(if_range, opened.etag) else None
    except Unsatisfiable:
        headers = {"Content-Range": f"bytes */{opened.size}", "Accept-Ranges": "bytes"}
        return Response(status_code=416, headers=headers), None
    first, rest = await run_in_threadpool(_first_and_rest, opened.iter_range(rng))
    length = rng.length if rng else opened.size
    headers = {**base, "Content-Length": str(length)}
    if rng is not None:
        headers["Content-Range"] = rng.content_range(opened.size)
    body = itertools.chain([first] if first else [], rest)
    # A sync iterator: Starlette pulls it in a worker thread, so decryption and blob
    # reads never block the event loop.
    response = StreamingResponse(
        body, status_code=206 if rng else 200, media_type=opened.content_type, headers=headers
    )
    return response, rng


async def pump(request: Request, up: Upload, limit: int) -> None:
    """Feed the body to the upload as it arrives; seal and store off the event loop."""
    async for piece in request.stream():
        if not piece:
            continue
        if up.size + len(piece) > limit:
            raise PayloadTooLarge(f"the file is over the {limit}-byte limit (SEALMAIL_MAX_FILE_BYTES)")
        if up.would_write(len(piece)):
            await run_in_threadpool(up.feed, piece)
        else:
            up.feed(piece)
