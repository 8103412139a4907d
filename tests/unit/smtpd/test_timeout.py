"""The idle timeout: one timer, moved by every command, still closes an idle connection."""

from __future__ import annotations

import asyncio
import time

from tests.support.waiting import wait_until_async

from sealmail.smtpd.server import ListenerHandler, ListenerSMTP

TIMEOUT = 0.4


async def _open() -> tuple[asyncio.AbstractServer, asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ListenerSMTP(ListenerHandler(), hostname="mx.test", timeout=TIMEOUT), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await reader.readline()).startswith(b"220 ")
    return server, reader, writer


def test_commands_move_the_deadline_and_idleness_closes() -> None:
    asyncio.run(_commands_then_silence())


async def _commands_then_silence() -> None:
    server, reader, writer = await _open()
    try:
        start = time.monotonic()
        # Commands for longer than one timeout: each one moves the deadline.
        while time.monotonic() - start < 2.5 * TIMEOUT:
            last = time.monotonic()
            await wait_until_async(lambda last=last: time.monotonic() - last > TIMEOUT / 4)
            writer.write(b"NOOP\r\n")
            assert await reader.readline() == b"250 2.0.0 OK\r\n"
        quiet_from = time.monotonic()
        # Then silence: the server closes once a whole timeout has passed.
        assert await asyncio.wait_for(reader.read(), 10 * TIMEOUT) == b""
        assert time.monotonic() - quiet_from >= TIMEOUT * 0.9
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
