"""Each HTTP request's head (request line and headers) must arrive within a deadline.

uvicorn times out only a keep-alive connection that sends nothing after a response, and it
stops that clock at the first byte of the next request.  A client that opens a connection and
sends nothing, or trickles its headers a byte every few seconds (slowloris), held a connection,
its buffers and a slot under any connection limit for as long as it liked: a few hundred such
sockets from one laptop take the API, the console and the portal away from everyone.  Here the
head of every request has ``HEAD_SECONDS`` from the connection's start, or from the first byte
of a later request on a kept-alive connection; the body and the handler are not timed (an upload
on a slow line, a report that takes a while).
"""

from __future__ import annotations

import asyncio
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Browsers and API clients send a head in one packet; 10 s is generous for any real client on
# a bad line and short for an attacker holding sockets.
HEAD_SECONDS: Final = 10.0


class HeadDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol (the one it picks when httptools is installed), closing a
    connection whose request head is late."""

    head_seconds: float = HEAD_SECONDS
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own signature
        super().connection_made(transport)
        self._start_head_clock()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_clock()  # a later request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._stop_head_clock()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        super().connection_lost(exc)

    def _start_head_clock(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_seconds, self._head_late)

    def _stop_head_clock(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()
