"""A webhook receiver on loopback port 0 that records requests and answers as told.

::

    with Receiver() as hook:
        hook.fail(2, status=503)          # the next two requests get 503, then 204 again
        ... hook.requests[0].headers["webhook-id"]
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        reply = self.server.owner._record(
            Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: Receiver) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class Receiver:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self._server = _Server(self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/sealmail"

    def fail(self, times: int, status: int = 500, headers: dict[str, str] | None = None) -> None:
        with self._lock:
            self._script.extend(Reply(status, headers or {}) for _ in range(times))

    def always(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.fail(10_000, status, headers)

    def _record(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else Reply()

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
