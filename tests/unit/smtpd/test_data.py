"""DATA read in bulk gives what aiosmtpd's line-by-line loop gives, however the bytes arrive."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.waiting import yield_to_loop

from sealmail.smtpd.data import DataRead, DataVerdict, _has_long_line, _unstuff, read_data

LINE_LIMIT = 1001  # aiosmtpd's line_length_limit, also its StreamReader limit


def reference(stream: bytes, size_limit: int | None) -> tuple[DataRead, bytes]:
    """RFC 5321 line by line, as aiosmtpd reads it: (result, bytes left after the end)."""
    pos, size, held, verdict = 0, 0, [], DataVerdict.COMPLETE
    while True:
        end = stream.index(b"\r\n", pos) + 2
        line = stream[pos:end]
        pos = end
        if line == b".\r\n":
            break
        size += len(line)
        if verdict is DataVerdict.COMPLETE and size_limit and size > size_limit:
            verdict = DataVerdict.TOO_MUCH
        elif verdict is DataVerdict.COMPLETE and len(line) > LINE_LIMIT:
            verdict = DataVerdict.TOO_LONG
        held.append(line[1:] if line.startswith(b".") else line)
    if verdict is not DataVerdict.COMPLETE:
        return DataRead(verdict), stream[pos:]
    return DataRead(DataVerdict.COMPLETE, b"".join(held)), stream[pos:]


async def bulk(pieces: list[bytes], size_limit: int | None) -> tuple[DataRead, bytes]:
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    task = asyncio.ensure_future(read_data(reader, size_limit, LINE_LIMIT))
    for piece in pieces:
        reader.feed_data(piece)
        await yield_to_loop()  # the reader runs on what has arrived, as between segments
    reader.feed_eof()
    result = await task
    return result, await reader.read()


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


LINES = st.sampled_from(
    [b"", b".", b"..", b".x", b"..x", b"a", b"Subject: hi", b"end.", b"\r", b"\n", b"a\rb",
     b"x" * 999, b"y" * 1000]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(LINES, max_size=12),
    after=st.sampled_from([b"", b"QUIT\r\n", b".\r\nMAIL FROM:<a@b.c>\r\n", b"\r\n.\r\n"]),
    cuts=st.lists(st.integers(min_value=0, max_value=20_000), max_size=6),
    size_limit=st.sampled_from([None, 0, 5, 40, 1000, 3000]),
)
def test_bulk_read_matches_line_by_line(
    lines: list[bytes], after: bytes, cuts: list[int], size_limit: int | None
) -> None:
    stream = b"".join(line + b"\r\n" for line in lines) + b".\r\n" + after
    expected, rest = reference(stream, size_limit)
    got, got_rest = asyncio.run(bulk(split(stream, cuts), size_limit))
    assert got_rest == rest
    if got.verdict is DataVerdict.COMPLETE or expected.verdict is DataVerdict.COMPLETE:
        assert got == expected
    # Both limits broken: which reply wins may differ from aiosmtpd's by a line; both refuse.


@pytest.mark.parametrize(
    ("stream", "content", "rest"),
    [
        (b".\r\nQUIT\r\n", b"", b"QUIT\r\n"),  # an empty message, the terminator first
        (b"\r\n.\r\n", b"\r\n", b""),
        (b"a\r\n.\r\nb", b"a\r\n", b"b"),
        (b"..\r\n...x\r\n.\r\n", b".\r\n..x\r\n", b""),  # RFC 5321 §4.5.2 transparency
        (b"a.\r\n.\r\n", b"a.\r\n", b""),
    ],
)
def test_the_first_lone_dot_ends_the_data_and_nothing_after_it_is_read(
    stream: bytes, content: bytes, rest: bytes
) -> None:
    # One byte at a time: every terminator straddles reads.
    got, got_rest = asyncio.run(bulk([bytes([b]) for b in stream], None))
    assert (got, got_rest) == (DataRead(DataVerdict.COMPLETE, content), rest)


def test_a_large_message_in_one_piece_is_read_whole() -> None:
    body = b"".join(b"line %05d of a long message\r\n" % i for i in range(20_000))
    got, rest = asyncio.run(bulk([body + b".\r\nNOOP\r\n"], 10_000_000))
    assert (got.content, rest) == (body, b"NOOP\r\n")


def test_too_much_data_is_dropped_as_it_arrives_and_the_end_still_found() -> None:
    body = b"z" * 500 + b"\r\n"
    got, rest = asyncio.run(bulk([body] * 200 + [b".\r\nRSET\r\n"], 5_000))
    assert (got, rest) == (DataRead(DataVerdict.TOO_MUCH), b"RSET\r\n")


def test_a_line_over_1000_octets_is_too_long() -> None:
    got, _ = asyncio.run(bulk([b"a\r\n" + b"x" * 1000 + b"\r\n.\r\n"], None))
    assert got == DataRead(DataVerdict.TOO_LONG)


def test_a_client_gone_mid_data_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(bulk([b"Subject: x\r\n\r\nhalf a mess"], None))


@settings(max_examples=500, deadline=None)
@given(
    pieces=st.lists(
        st.tuples(
            st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"."]), st.integers(min_value=1, max_value=9)
        ),
        max_size=10,
    ),
    line_limit=st.integers(min_value=3, max_value=10),
)
def test_the_long_line_check_agrees_with_splitting_at_crlf(
    pieces: list[tuple[bytes, int]], line_limit: int
) -> None:
    raw = b"".join(piece * n for piece, n in pieces)
    split_lines = raw.split(b"\r\n")
    expected = max(map(len, split_lines)) > line_limit - 2  # the limit counts the CRLF
    assert _has_long_line(raw, line_limit) is expected
    assert _has_long_line(bytearray(raw), line_limit) is expected


def test_with_keep_only_the_first_octets_are_held_and_the_end_is_still_found() -> None:
    body = b"".join(b"..line %d\r\n" % i for i in range(100_000))  # dot-stuffed lines
    stream = body + b".\r\nNOOP\r\n"
    for keep in (0, 1, 1000, 65_536, len(body) - 1, len(body)):
        expected, rest = reference(stream, None)
        result, left = asyncio.run(bulk_with_keep(split(stream, [5, 70_000, 900_001]), keep))
        assert (result.verdict, left) == (DataVerdict.COMPLETE, rest)
        # The held part is the received bytes up to ``keep``, unstuffed.
        assert result.content == _unstuff(body[:keep])
    assert expected.content.startswith(result.content)


async def bulk_with_keep(pieces: list[bytes], keep: int) -> tuple[DataRead, bytes]:
    reader = asyncio.StreamReader(limit=LINE_LIMIT)
    task = asyncio.ensure_future(read_data(reader, None, LINE_LIMIT, keep))
    for piece in pieces:
        reader.feed_data(piece)
        await yield_to_loop()
    reader.feed_eof()
    return await task, await reader.read()
