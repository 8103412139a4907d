"""STARTTLS through the loop's ``start_tls`` (smtpd/starttls.py), on uvloop and on asyncio's loop:
the session starts over with ``session.ssl`` filled, plaintext behind STARTTLS is dropped, and
a failed handshake closes the connection and is counted."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop
from tests.support.waiting import wait_until_async

from sealmail.crypto.devcert import create_dev_certificates
from sealmail.net.event_loop import loop_factory
from sealmail.smtpd.server import (
    ListenerHandler,
    ListenerOptions,
    ListenerSMTP,
    SmtpListener,
    server_tls_context,
)

LOOPS = ["uvloop", "asyncio"]


def _run(kind: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        runner.run(main())


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class _Server:
    def __init__(self, tls: ssl.SSLContext) -> None:
        self.handler = ListenerHandler()
        self.tls = tls
        self.protocols: list[ListenerSMTP] = []

    def make(self) -> ListenerSMTP:
        smtp = ListenerSMTP(self.handler, hostname="mx.test", tls_context=self.tls)
        self.protocols.append(smtp)
        return smtp

    async def open(self) -> tuple[asyncio.AbstractServer, asyncio.StreamReader, asyncio.StreamWriter]:
        server = await asyncio.get_running_loop().create_server(self.make, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        assert (await reader.readline()).startswith(b"220 ")
        return server, reader, writer


async def _reply(reader: asyncio.StreamReader) -> bytes:
    line = await reader.readline()
    while line[3:4] == b"-":
        line = await reader.readline()
    return line


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    _, cert, key = create_dev_certificates(Path(tmp_path_factory.mktemp("tls")), ["127.0.0.1"])
    return server_tls_context(cert, key, None)


@pytest.mark.parametrize("kind", LOOPS)
def test_starttls_starts_a_new_tls_session_and_drops_plaintext_behind_it(
    kind: str, tls: ssl.SSLContext
) -> None:
    server = _Server(tls)

    async def main() -> None:
        listening, reader, writer = await server.open()
        writer.write(b"EHLO client.test\r\n")
        assert b"STARTTLS" in await reader.readuntil(b"250 HELP\r\n")
        writer.write(b"STARTTLS\r\nNOOP\r\n")  # the NOOP is injected in the clear
        assert (await reader.readline()).startswith(b"220 ")
        await writer.start_tls(_client_context())
        # RFC 3207 §4.2: the session starts over; EHLO first, and the NOOP was never run.
        writer.write(b"MAIL FROM:<a@clinic.example>\r\n")
        assert (await _reply(reader)).startswith(b"503 ")
        writer.write(b"EHLO client.test\r\n")
        ehlo = await reader.readuntil(b"250 HELP\r\n")
        assert b"STARTTLS" not in ehlo and b"AUTH" in ehlo
        smtp = server.protocols[0]
        assert smtp.tls_active and smtp.session is not None
        assert smtp.session.ssl["cipher"] and smtp.session.ssl["ssl_object"] is not None
        if kind == "uvloop":
            # TLS in uvloop's compiled code, not asyncio.sslproto.
            assert not type(smtp.transport).__module__.startswith("asyncio")
        writer.write(b"QUIT\r\n")
        assert (await _reply(reader)).startswith(b"221 ")
        writer.close()
        listening.close()
        await listening.wait_closed()

    _run(kind, main)


@pytest.mark.parametrize("kind", LOOPS)
def test_a_failed_handshake_closes_the_connection_and_is_counted(kind: str, tls: ssl.SSLContext) -> None:
    server = _Server(tls)
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        listening, reader, writer = await server.open()
        writer.write(b"STARTTLS\r\n")
        assert (await reader.readline()).startswith(b"220 ")
        writer.write(b"this is not a TLS ClientHello\r\n" * 4)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await wait_until_async(lambda: bool(server.handler.rejections["tls_failed"]), 10, "tls_failed")
        assert server.handler.rejections["tls_failed"] == 1
        assert server.protocols[0].transport is None
        listening.close()
        await listening.wait_closed()

    _run(kind, main)
    assert not [e for e in errors if "exception" in e and not isinstance(e["exception"], ssl.SSLError)]


def test_the_loop_setting_picks_uvloop_or_the_standard_loop() -> None:
    uv = loop_factory("uvloop")()
    standard = loop_factory("asyncio")()
    try:
        assert isinstance(uv, uvloop.Loop)
        assert not isinstance(standard, uvloop.Loop)
        assert isinstance(standard, asyncio.BaseEventLoop)
    finally:
        uv.close()
        standard.close()


@pytest.mark.parametrize("kind", LOOPS)
def test_the_listener_thread_runs_the_configured_loop(kind: str, tls: ssl.SSLContext) -> None:
    listener = SmtpListener(ListenerHandler(), ListenerOptions("127.0.0.1", 0, "mx.test", 1000, kind), tls)
    listener.start()
    try:
        assert listener._controller is not None
        assert isinstance(listener._controller.loop, uvloop.Loop) == (kind == "uvloop")
    finally:
        listener.stop()
