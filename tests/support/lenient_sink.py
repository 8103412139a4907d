"""A deliberately lenient SMTP receiver on loopback, for SMTP-smuggling tests.

Real receivers differ in what ends a line and what ends the data: some drop NUL, some
take a bare LF or a bare CR as a line end, so ``<LF>.<LF>`` or ``<CRLF>.<NUL><CRLF>``
ends the message for them.  Whatever follows is then read as SMTP commands, and a
second, unauthenticated message can ride inside the first (SMTP smuggling, 2023).  This
sink does exactly that, so a test can prove that what Sealmail sends is read as one
message even by such a receiver.  Plaintext only, no extensions beyond 8BITMIME.

``messages`` holds the raw bytes of each message as they arrived (before the sink's
leniency), so a test can also check they contain no NUL and only CRLF line ends.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType


def _lenient(data: bytes) -> bytes:
    """What a lenient receiver sees: NUL dropped, CR, LF and CRLF all one line end (LF)."""
    return data.replace(b"\0", b"").replace(b"\r\n", b"\n").replace(b"\r", b"\n")


class _Connection:
    def __init__(self, sink: LenientSink, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sink = sink
        self.reader = reader
        self.writer = writer
        self.pending = b""  # raw bytes received but not yet consumed

    async def run(self) -> None:
        self.writer.write(b"220 lenient.test ESMTP\r\n")
        try:
            while await self._command():
                pass
        finally:
            self.writer.close()
            self.sink.closed += 1

    async def _more(self) -> bool:
        chunk = await self.reader.read(65536)
        self.pending += chunk
        return bool(chunk)

    async def _command(self) -> bool:
        while True:
            # Blank lines and stray NULs between commands are skipped, as lenient servers do.
            self.pending = self.pending.lstrip(b"\r\n\0")
            if b"\r" in self.pending or b"\n" in self.pending:
                break
            if not await self._more():
                return False
        line = _lenient(self.pending).partition(b"\n")[0]
        # Consume the raw bytes of this line: up to the first CR or LF (and a following LF).
        cut = min(i for i in (self.pending.find(b"\r"), self.pending.find(b"\n")) if i >= 0)
        self.pending = self.pending[cut + (2 if self.pending[cut : cut + 2] == b"\r\n" else 1) :]
        verb = line.strip().split(b" ", 1)[0].upper()
        if verb == b"EHLO":
            self.writer.write(b"250-lenient.test\r\n250 8BITMIME\r\n")
        elif verb == b"QUIT":
            self.writer.write(b"221 Bye\r\n")
            await self.writer.drain()
            return False
        elif verb == b"DATA":
            self.writer.write(b"354 go ahead\r\n")
            await self.writer.drain()
            if not await self._data():
                return False
            self.writer.write(b"250 queued\r\n")
        else:
            self.writer.write(b"250 ok\r\n")
        await self.writer.drain()
        return True

    async def _data(self) -> bool:
        """Read until the lenient end of data; what follows stays pending as commands."""
        while True:
            seen = b"\n" + _lenient(self.pending)
            if b"\n.\n" in seen:
                break
            if not await self._more():
                return False
        # Walk the raw bytes to the position where the lenient view ended the data.
        raw = self.pending
        body_end = len(raw)
        view = bytearray(b"\n")
        for index in range(len(raw)):
            byte = raw[index : index + 1]
            if byte == b"\0":
                continue
            if byte == b"\r" and raw[index + 1 : index + 2] == b"\n":
                continue
            view += b"\n" if byte == b"\r" else byte
            if view.endswith(b"\n.\n"):
                body_end = index + 1
                break
        message = raw[:body_end]
        self.pending = raw[body_end:]
        self.sink.messages.append(message)
        return True


class LenientSink:
    """Started with ``with LenientSink("127.0.0.2") as sink``; ``sink.port`` is the bound port."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        self.port = port
        self.messages: list[bytes] = []
        self.closed = 0  # connections that have ended, all their bytes processed
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="lenient-sink", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Connection(self, reader, writer).run()

    def __enter__(self) -> LenientSink:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.host, self.port), self._loop
        )
        self._server = started.result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        server = self._server
        if server is not None:

            async def close() -> None:
                server.close()
                await server.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
