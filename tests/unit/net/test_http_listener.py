"""The HTTP roles' listening sockets: answers are not held back by Nagle on either loop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from sealmail.net.event_loop import loop_factory
from sealmail.runtime import _listening


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_an_accepted_api_connection_has_tcp_nodelay(loop_name: str) -> None:
    # Without TCP_NODELAY an answer written as headers then body waits for the client's
    # delayed ACK (40 ms on Linux) before its second segment leaves.
    sock = _listening("127.0.0.1", 0, "SEALMAIL_API_PORT")
    port = sock.getsockname()[1]

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        found: asyncio.Future[int] = loop.create_future()

        def on_client(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            found.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_client, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(found, 10)
            finally:
                writer.close()

    factory: Callable[[], asyncio.AbstractEventLoop] = loop_factory(loop_name)
    with asyncio.Runner(loop_factory=factory) as runner:
        assert runner.run(accepted_nodelay()) != 0
