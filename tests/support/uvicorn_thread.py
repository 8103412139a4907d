"""uvicorn for a server in a thread of the test process, stopped in milliseconds.

``uvicorn.Server`` notices ``should_exit`` at its next 0.1 s tick, then pauses a fixed 0.1 s
for connections to close and polls every 0.1 s until they have: 0.2-0.3 s at the end of every
test that serves the console, the portal or the API over loopback (several hundred tests).
``ThreadServer`` serves exactly as uvicorn does; only ``stop`` wakes the loop at once and the
shutdown waits on the same conditions (no connection open, no task running) in milliseconds.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from tests.support.waiting import wait_until_async

TICK = 0.1  # uvicorn's own: the Date header is refreshed every tenth tick


class ThreadServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def stop(self) -> None:
        """Ask the server to exit (from any thread); it wakes now, not at its next tick."""
        self.should_exit = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def main_loop(self) -> None:
        # uvicorn's loop, with its 0.1 s sleep cut short by ``stop``.
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            try:
                await asyncio.wait_for(self._wake.wait(), TICK)
            except TimeoutError:
                pass

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's steps in its order; what it paused or polled 0.1 s for is waited on here.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        state = self.server_state
        await wait_until_async(
            lambda: not state.connections and not state.tasks, 10, "connections or tasks left open"
        )
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()
