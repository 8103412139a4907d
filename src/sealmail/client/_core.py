"""The parts both clients share: the description of one call, and the retry rules."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from sealmail.client.errors import SealmailApiError, SealmailTransportError, from_response

USER_AGENT = "sealmail-client/0.1"
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request, independent of the sync or async client that sends it."""

    method: str
    path: str
    params: Mapping[str, str | int] | None = None
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries of 429 and 503: both mean the server did nothing with the request.

    ``Retry-After`` is honoured up to ``max_wait`` seconds; a longer demand is not waited
    for, the error goes to the caller with ``retry_after`` set.
    """

    max_retries: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def delay(self, attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        asked = retry_after(response)
        if asked is not None:
            return asked if asked <= self.max_wait else None
        # Full jitter (AWS architecture blog): spreads clients that failed together.
        return random.uniform(0, min(self.max_wait, self.backoff * 2**attempt))  # noqa: S311 -- jitter, not crypto


def retry_after(response: httpx.Response) -> float | None:
    """RFC 9110 §10.2.3: ``Retry-After`` is delay-seconds or an HTTP-date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to isdigit, not to float
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# Bytes per read of an upload or write of a download: memory use stays flat whatever the size.
CHUNK_SIZE = 256 * 1024

BinarySource = str | os.PathLike[str] | IO[bytes]
"""A file to upload: a path, or a binary file object open for reading."""
BinaryTarget = str | os.PathLike[str] | IO[bytes]
"""Where a download goes: a path (created or truncated), or a binary file object open for writing."""


class UploadBody:
    """An upload's bytes, read a chunk at a time and never held whole.

    A path is reopened, and a seekable file object rewound, for each attempt, so a 429 or
    503 can be retried; a pipe or socket can be read once only (``rewindable`` is false).
    """

    def __init__(self, source: BinarySource) -> None:
        self._path: Path | None = None
        self._file: IO[bytes] | None = None
        self._start = 0
        self._read = False
        if isinstance(source, str | os.PathLike):
            self._path = Path(source)
            self.name = self._path.name
            self.size: int | None = self._path.stat().st_size
            self.rewindable = True
            return
        self._file = source
        name = getattr(source, "name", None)
        self.name = Path(name).name if isinstance(name, str) else ""
        self.rewindable = source.seekable()
        self.size = None
        if self.rewindable:
            self._start = source.tell()
            self.size = source.seek(0, os.SEEK_END) - self._start
            source.seek(self._start)

    def _begin(self) -> IO[bytes]:
        if self._path is not None:
            return self._path.open("rb")
        assert self._file is not None
        if self.rewindable:
            self._file.seek(self._start)
        elif self._read:
            raise RuntimeError("a non-seekable upload source can be sent once only")
        self._read = True
        return self._file

    def _end(self, handle: IO[bytes]) -> None:
        # Only files the client opened itself are closed; the caller's stay open.
        if self._path is not None:
            handle.close()

    def chunks(self) -> Iterator[bytes]:
        handle = self._begin()
        try:
            while chunk := handle.read(CHUNK_SIZE):
                yield chunk
        finally:
            self._end(handle)

    async def achunks(self) -> AsyncIterator[bytes]:
        # Disk reads go to a thread: a slow disk must not stall the event loop.
        handle = await asyncio.to_thread(self._begin)
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_SIZE):
                yield chunk
        finally:
            await asyncio.to_thread(self._end, handle)


def open_target(target: BinaryTarget) -> tuple[IO[bytes], bool]:
    """The file to write a download to, and whether the client opened it (and must close it)."""
    if isinstance(target, str | os.PathLike):
        return Path(target).open("wb"), True
    return target, False


def discard_target(target: BinaryTarget) -> None:
    """A download that failed half-way must not leave a truncated file behind under its name."""
    if isinstance(target, str | os.PathLike):
        Path(target).unlink(missing_ok=True)


def segment(value: str) -> str:
    """One path segment, escaped: an id can never add a path component."""
    return quote(value, safe="")


def raise_for_problem(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise from_response(response, retry_after(response))


def transport_error(exc: httpx.TransportError, call: Call) -> SealmailTransportError:
    # The message names the operation only: URLs may carry ids and filters, never keys.
    return SealmailTransportError(f"{call.method} {call.path} failed: {type(exc).__name__}")


def client_headers(api_key: str) -> dict[str, str]:
    if not api_key:
        raise ValueError("an API key is required (it starts with `sm_`)")
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"}


__all__ = [
    "CHUNK_SIZE",
    "BinarySource",
    "BinaryTarget",
    "Call",
    "RetryPolicy",
    "SealmailApiError",
    "UploadBody",
    "client_headers",
    "discard_target",
    "open_target",
    "raise_for_problem",
    "retry_after",
    "segment",
    "transport_error",
]
