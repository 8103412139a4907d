"""A plaintext SMTP server on loopback that answers each command from a script.

For the outbound client against servers that misbehave: replies in pieces, replies that
never come, replies that trickle (``pace`` seconds between pieces), EHLO keywords that lie.
Each piece of a scripted reply is its own write (and packet).  ``""`` never answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from tests.support.loop_thread import LoopThread

# What the server answers to each command (by its verb) unless the script says otherwise.
NORMAL = {
    b"EHLO": [b"250-mx1.example.org\r\n", b"250 8BITMIME\r\n"],
    b"MAIL": [b"250 2.1.0 ok\r\n"],
    b"RCPT": [b"250 2.1.5 ok\r\n"],
    b"DATA": [b"354 go on\r\n"],
    b"RSET": [b"250 2.0.0 ok\r\n"],
    b"QUIT": [b"221 2.0.0 bye\r\n"],
}


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _event() -> asyncio.Event:
    return asyncio.Event()  # made on the server's loop, which waits on it


class LoopServer:
    """An asyncio server on ``hosts`` (one port; 0 picks one) in a loop thread of its own."""

    def __init__(self, handler: Handler, hosts: list[str], port: int) -> None:
        self.loop = LoopThread()
        self._handler = handler
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = self.loop.run(_event())  # set on close: a paced handler stops waiting
        self.server = self.loop.run(asyncio.start_server(self._tracked, hosts, port))
        self.port = self.server.sockets[0].getsockname()[1]

    async def _tracked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Kept so close() can end a handler still busy (a paced reply to a client that left):
        # a task left pending when the loop closes fails whichever test collects it later.
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        finally:
            self._tasks.discard(task)

    def close(self) -> None:
        # On the server's own loop: asyncio.Server is not thread-safe, and a close from this
        # thread raced the loop's own wake-up as the last connection ended (a TypeError).
        self.loop.run(self._close())
        self.loop.close()

    async def _close(self) -> None:
        self.closing.set()
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()


class Scripted(LoopServer):
    """A plaintext SMTP server at ``host`` that answers from ``script`` (merged over NORMAL)."""

    def __init__(self, script: dict[bytes, list[bytes]], host: str, *, pace: float = 0.0) -> None:
        self.script = {**NORMAL, **script}
        self.pace = pace
        self.final_reply = b"250 2.0.0 queued\r\n"  # to the end of the data
        self.connections = 0
        self.messages: list[bytes] = []
        self.commands: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__(self._serve, [host], 0)

    async def _closed_within(self, seconds: float) -> bool:
        """Pace a reply: whether the server closed within ``seconds``."""
        try:
            await asyncio.wait_for(self.closing.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        writer.write(b"220 mx1.example.org ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                with self._lock:
                    self.commands.append(verb)
                for piece in self.script.get(verb, [b"500 5.5.2 what\r\n"]):
                    if writer.is_closing() or reader.at_eof():
                        return  # the client hung up mid-reply
                    writer.write(piece)
                    await writer.drain()
                    if self.pace and await self._closed_within(self.pace):
                        return
                if verb == b"DATA" and self.script[b"DATA"][-1].startswith(b"354"):
                    body = await reader.readuntil(b"\r\n.\r\n")
                    with self._lock:
                        self.messages.append(body)
                    writer.write(self.final_reply)
                if verb == b"QUIT":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
