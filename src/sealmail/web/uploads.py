"""Bounding a form upload before a byte of it is parsed.

The console's multipart forms are parsed whole by Starlette, so their size is checked from
``Content-Length`` first (uvicorn holds a body to its declared length).  A request without
one (``Transfer-Encoding: chunked``) cannot be bounded that way: it is told to send one
(411), not that it was too large.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from sealmail.domain.numerals import exceeds, whole_number


def check_declared_length(request: Request, limit: int, too_large: str) -> None:
    """411 without a ``Content-Length``, 400 for one that is not a number, 413 (with
    ``too_large``) above ``limit`` bytes."""
    length = request.headers.get("content-length")
    if length is None:
        raise HTTPException(
            411,
            "Send the upload with a Content-Length (as a browser's form does); chunked uploads are refused.",
        )
    if exceeds(length, limit):
        raise HTTPException(413, too_large)
    if whole_number(length) is None:
        raise HTTPException(400, "Content-Length must be a number of bytes.")
