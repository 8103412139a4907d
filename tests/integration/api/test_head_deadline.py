"""Slowloris: a request's head must arrive within the deadline (``web/head_deadline.py``);
the body and the handler are not timed.  A real uvicorn on loopback, raw sockets as the
attacker."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI, Request
from tests.support.uvicorn_thread import ThreadServer
from tests.support.waiting import wait_until, wait_until_async

from sealmail import runtime
from sealmail.web.head_deadline import HEAD_SECONDS, HeadDeadline

DEADLINE = 0.5


class QuickDeadline(HeadDeadline):
    head_seconds = DEADLINE


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        # A handler that outlives the deadline: only the head is timed.
        start = time.monotonic()
        await wait_until_async(lambda: time.monotonic() - start > 2 * DEADLINE, 5, "never")
        return {"ok": True}

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadServer(
        uvicorn.Config(
            _app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off", http=QuickDeadline
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 10, "uvicorn did not start")
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.stop()
        thread.join(10)


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Send ``trickle`` a byte at a time, each after 0.1 s of silence from the server; the
    seconds until the server closed the connection, or None if it was still open after
    ``seconds``."""
    start = time.monotonic()
    sock.settimeout(0.1)
    pending = list(trickle)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            if pending:
                sock.sendall(bytes([pending.pop(0)]))
        except ConnectionResetError:
            return time.monotonic() - start
    return None


def test_a_connection_that_sends_nothing_is_closed_after_the_deadline(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        closed = _closed_within(sock, 10)
    assert closed is not None and DEADLINE * 0.9 <= closed < DEADLINE + 3


def test_a_head_trickled_a_byte_at_a_time_is_cut_off(port: int) -> None:
    head = b"GET /ok HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # 0.1 s a byte: the head would take 23 s; every byte resets nothing.
        closed = _closed_within(sock, 10, trickle=head)
    assert closed is not None and closed < DEADLINE + 3


def test_a_prompt_head_gets_its_answer_however_long_the_handler_or_the_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(10)
        reader = sock.makefile("rb")
        for path in ("/slow", "/ok", "/slow"):  # kept alive past several deadlines
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            assert reader.read(length) == b'{"ok":true}'


def test_a_body_slower_than_the_deadline_is_not_cut_off(port: int) -> None:
    body = b"x" * 8
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n")
        # The body trickles for ~0.9 s, past the deadline; the connection stays open for it.
        assert _closed_within(sock, 0.9, trickle=body[:-1]) is None
        sock.settimeout(10)
        sock.sendall(body[-1:])
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")


def test_the_served_api_and_portal_use_the_head_deadline() -> None:
    server = runtime._http_server(FastAPI(), "127.0.0.1", 0)
    assert server.config.http is HeadDeadline and HeadDeadline.head_seconds == HEAD_SECONDS
