"""Reading an SMTP DATA section in bulk (RFC 5321 §4.1.1.4, §4.5.2).

aiosmtpd reads DATA one line at a time: an ``await readuntil(b"\\r\\n")``, a size check
and a list append per line — about 80 trips round its loop for a 5 KB message, 10 % of
the gateway's CPU per message (issue 18's profile).  Here the reader looks for the whole
end-of-data sequence ``CRLF . CRLF`` at once, so a message already in the buffer costs
one call, and a larger one a call per ``limit`` bytes (``LimitOverrunError``), while
keeping what aiosmtpd's loop guarantees:

* the data ends at the first line that is a lone ``.`` — also the very first line —
  and nothing after it is consumed (a pipelining client's next command stays in the
  reader);
* more than ``size_limit`` bytes (counted as aiosmtpd counts them: every line with its
  CRLF and stuffing dot, the final ``.`` line not included) is "too much": what was held
  is dropped at once and the rest is read and discarded up to the end, so memory stays
  bounded by the limit and the reader's buffer;
* a line longer than ``line_limit`` octets with its CRLF (RFC 5321 §4.5.3.1.6) is "too
  long", judged on the lines received before the size limit was crossed;
* transparency: one leading dot is removed from every line that starts with one.

With ``keep``, only the first ``keep`` octets received are held (and checked for long
lines): the rest is counted against the size limit and dropped as it arrives.  For a
listener that reads no further (the inbound report listener parses a report's first
megabyte), so a client's data costs no more memory than that, however large the SIZE.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["DataRead", "DataVerdict", "read_data"]

# RFC 5321 §4.1.1.4: the end of mail data, including the CRLF that ends the last line.
TERMINATOR: Final = b"\r\n.\r\n"
# DATA follows the command's CRLF, so its first line begins as if after one.
_VIRTUAL_START: Final = b"\r\n"


class DataVerdict(enum.Enum):
    """How the DATA section ended."""

    COMPLETE = "complete"
    TOO_LONG = "too_long"  # a line over the line limit: 500 (RFC 5321 §4.5.3.1.6)
    TOO_MUCH = "too_much"  # over the size limit: 552 (RFC 1870 §6.3)


@dataclass(frozen=True, slots=True)
class DataRead:
    """The verdict and, when complete, the content with transparency dots removed."""

    verdict: DataVerdict
    content: bytes = b""


def _overlap(tail: bytes) -> int:
    """Length of the longest end of ``tail`` that begins the terminator (0 when none).

    Such bytes were already consumed, so the terminator may finish in the stream's next
    bytes without ``readuntil`` ever seeing it whole.
    """
    for k in range(min(len(tail), len(TERMINATOR) - 1), 0, -1):
        if tail.endswith(TERMINATOR[:k]):
            return k
    return 0


def _has_long_line(raw: bytes | bytearray, line_limit: int) -> bool:
    """Whether a line of ``raw`` (split at CRLF) is longer than ``line_limit`` octets with its
    CRLF (which ``line_limit`` counts).

    Each step looks for the last CRLF within one longest line's reach of the current line's
    start: every line before it fits, and none means the current line does not.  A few
    searches a message instead of a split into a bytes object per line.
    """
    longest = line_limit - 2
    start, size = 0, len(raw)
    while size - start > longest:
        end = raw.rfind(b"\r\n", start, start + longest + 2)
        if end < 0:
            return True
        start = end + 2
    return False


def _unstuff(raw: bytes | bytearray) -> bytes:
    """RFC 5321 §4.5.2: remove the first dot of every line that starts with one."""
    if b"." not in raw:
        return bytes(raw)
    # Matches never overlap: "CRLF ." twice in a row would contain the terminator.
    return (_VIRTUAL_START + raw).replace(b"\r\n.", b"\r\n")[len(_VIRTUAL_START) :]


class _Section:
    """What has been read of one DATA section so far."""

    def __init__(self, size_limit: int | None, line_limit: int, keep: int | None) -> None:
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.keep = keep
        self.raw = bytearray()  # received bytes, dots still in; dropped once over a limit
        self.cut = False  # bytes past ``keep`` were dropped: ``raw`` ends before the stream does
        self.size = 0
        self.tail = _VIRTUAL_START  # the last consumed bytes (at most 4 matter)
        self.verdict = DataVerdict.COMPLETE

    def take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        keep = len(TERMINATOR) - 1
        self.tail = chunk[-keep:] if len(chunk) >= keep else (self.tail + chunk)[-keep:]
        if self.verdict is not DataVerdict.COMPLETE:
            return
        if self.keep is not None and len(self.raw) + len(chunk) > self.keep:
            self.raw += chunk[: max(0, self.keep - len(self.raw))]
            self.cut = True
        else:
            self.raw += chunk
        # Bytes that may be the terminator's ". CR" (dropped if it completes) do not count.
        if self.size_limit and self.size - max(0, _overlap(self.tail) - 2) > self.size_limit:
            # aiosmtpd's order: a long line already received wins over the size.
            long_line = _has_long_line(self.raw, self.line_limit)
            self.verdict = DataVerdict.TOO_LONG if long_line else DataVerdict.TOO_MUCH
            self.raw = bytearray()

    def drop(self, count: int) -> None:
        """Forget the last ``count`` bytes taken: they began the terminator."""
        if count:
            self.size -= count
            if not self.cut:  # else they were never held
                del self.raw[-count:]

    def result(self) -> DataRead:
        if self.verdict is DataVerdict.COMPLETE and _has_long_line(self.raw, self.line_limit):
            self.verdict = DataVerdict.TOO_LONG
        if self.verdict is not DataVerdict.COMPLETE:
            return DataRead(self.verdict)
        return DataRead(DataVerdict.COMPLETE, _unstuff(self.raw))


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int, keep: int | None = None
) -> DataRead:
    """Read one DATA section from ``reader`` up to and including its final ``.`` line.

    ``size_limit`` None or 0 means no limit; ``keep`` None, that all is held.  Raises
    ``asyncio.IncompleteReadError`` when the client closes the connection mid-way.
    """
    section = _Section(size_limit, line_limit, keep)
    while True:
        k = _overlap(section.tail)
        if k:
            # The terminator may have begun in consumed bytes; read exactly the rest.
            need = TERMINATOR[k:]
            chunk = await reader.readexactly(len(need))
            if chunk != need:
                section.take(chunk)
                continue
            # The terminator's first CRLF ends the last line and is content; its ". CRLF"
            # is not: drop the part already taken, take the CRLF part not yet taken.
            section.drop(max(0, k - 2))
            section.take(need[: max(0, 2 - k)])
            return section.result()
        try:
            chunk = await reader.readuntil(TERMINATOR)
        except asyncio.LimitOverrunError as exc:
            # More than the reader's limit without the terminator (or before it): take
            # what may be taken; the reader keeps any terminator's beginning.
            section.take(await reader.read(exc.consumed))
            continue
        section.take(chunk[: -len(TERMINATOR) + 2])
        return section.result()
