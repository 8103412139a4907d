"""The time-stamp client against a TSA answer that drips or inflates.

TSAs are usually plain http, so whoever is on the path writes the answer: it must end
within the client's timeout as a whole (not per read), and be capped in the bytes that
arrive, not in what they decompress to.
"""

from __future__ import annotations

import gzip
import select
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from sealmail.errors import ServiceUnavailable
from sealmail.evidence.timestamps import MAX_RESPONSE, Timestamper

DRIP_SECONDS = 0.05

pytestmark = pytest.mark.timeout(30)

Answer = Callable[[socket.socket], None]


class RawHttp:
    """Answers each connection on loopback with ``answer`` after reading the request head."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.stopping = threading.Event()  # set by close(): an answer still dripping ends
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsa"

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return  # closed before anyone came
        with conn:
            data = b""
            while b"\r\n\r\n" not in data and (chunk := conn.recv(4096)):
                data += chunk
            try:
                self.answer(conn)
            except OSError:
                pass  # the client hung up, as it should

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()
        self.thread.join(10)


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], RawHttp]]:
    started: list[RawHttp] = []

    def start(answer: Answer) -> RawHttp:
        server = RawHttp(answer)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_an_answer_dripped_a_byte_at_a_time_ends_at_the_timeout(serve: Callable[[Answer], RawHttp]) -> None:
    def drip(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/timestamp-reply\r\nContent-Length: 400\r\n\r\n"
        )
        # The drip is this test's input: a byte every DRIP_SECONDS, each well within a read
        # timeout, 20 s in all. Between bytes it waits on the client hanging up (its deadline
        # passed) or the server closing, whichever comes first, never out the whole drip.
        for _ in range(400):
            conn.sendall(b"0")
            readable, _, _ = select.select([conn], [], [], DRIP_SECONDS)
            if tsa.stopping.is_set() or (readable and not conn.recv(1)):
                return

    tsa = serve(drip)
    started = time.monotonic()

    with pytest.raises(ServiceUnavailable, match="did not answer within"):
        Timestamper(tsa.url, timeout=0.5).token(b"\x01" * 32)

    assert time.monotonic() - started < 3.0


def test_a_compressed_answer_is_capped_by_the_bytes_that_arrive(serve: Callable[[Answer], RawHttp]) -> None:
    bomb = gzip.compress(b"\0" * 100_000_000, compresslevel=9)  # ~100 KB inflating to 100 MB
    head = f"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"

    def inflating(conn: socket.socket) -> None:
        conn.sendall(head.encode() + bomb)

    tsa = serve(inflating)
    tracemalloc.start()
    try:
        with pytest.raises(ServiceUnavailable, match="too large"):
            Timestamper(tsa.url, timeout=5.0).token(b"\x01" * 32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(bomb) > MAX_RESPONSE
    assert peak < 8_000_000  # a few MB at most (it was 148 MB), never the 100 MB it inflates to
