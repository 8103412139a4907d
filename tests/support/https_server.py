"""An HTTPS server on loopback serving configurable paths (MTA-STS policies, WKD …).

::

    with HttpsServer(ca.issue("mta-sts.example.org")) as web:
        web.set_text("/.well-known/mta-sts.txt", "version: STSv1\\n…")
        web.set_redirect("/elsewhere", "https://evil.example/")
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from tests.support.ca import IssuedCert


@dataclass(frozen=True)
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering: a slow server (the client's deadline is tested)


class _Handler(BaseHTTPRequestHandler):
    server: _TlsHttpServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        owner = self.server.owner
        owner._log_request(self.path, self.headers.get("Host", ""))
        self._answer(owner.route(self.path.split("?", 1)[0]))

    def do_POST(self) -> None:
        owner = self.server.owner
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        owner._log_post(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        path = self.path.split("?", 1)[0]
        handler = owner.handler(path)
        self._answer(handler(body) if handler is not None else owner.route(path))

    def _answer(self, route: Route | None) -> None:
        if route is None:
            route = Route(404, b"not found\n", {"Content-Type": "text/plain"})
        if route.delay:
            # The server being slow (the client's deadline is under test), until it is stopped:
            # a stop never waits out the delay.
            self.server.owner.stopping.wait(route.delay)
        self.send_response(route.status)
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output quiet


class _TlsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, owner: HttpsServer):
        self.context, self.owner = context, owner
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Handshake in the per-request thread, so one bad client cannot stall accept().
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with tls:
            self.RequestHandlerClass(tls, client_address, self)

    def shutdown_request(self, request: socket.socket) -> None:
        try:
            request.close()
        except OSError:
            pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request (the tests of timeouts and size limits do) is
        # not a server fault: no traceback in the suite's output.  Anything else still prints.
        if isinstance(sys.exc_info()[1], ssl.SSLError | ConnectionError):
            return
        super().handle_error(request, client_address)


class HttpsServer:
    """HTTPS on ``host`` port 0 with a certificate from :class:`tests.support.ca.TestCA`."""

    def __init__(self, cert: IssuedCert, host: str = "127.0.0.1") -> None:
        self.cert, self.host, self.port = cert, host, 0
        self._routes: dict[str, Route] = {}
        self._handlers: dict[str, Callable[[bytes], Route]] = {}
        self._lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self.posts: list[tuple[str, dict[str, str], bytes]] = []  # (path, headers, body)
        self._server: _TlsHttpServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def set_route(self, path: str, route: Route) -> None:
        with self._lock:
            self._routes[path] = route

    def set_handler(self, path: str, handler: Callable[[bytes], Route]) -> None:
        """POSTs to ``path`` are answered by ``handler(body)`` (an API that reads its request)."""
        with self._lock:
            self._handlers[path] = handler

    def handler(self, path: str) -> Callable[[bytes], Route] | None:
        with self._lock:
            return self._handlers.get(path)

    def set_text(self, path: str, text: str, *, status: int = 200, content_type: str = "text/plain") -> None:
        self.set_route(path, Route(status, text.encode(), {"Content-Type": content_type}))

    def set_redirect(self, path: str, location: str, status: int = 301) -> None:
        self.set_route(path, Route(status, b"", {"Location": location}))

    def remove(self, path: str) -> None:
        with self._lock:
            self._routes.pop(path, None)

    def route(self, path: str) -> Route | None:
        with self._lock:
            return self._routes.get(path)

    def _log_request(self, path: str, host: str) -> None:
        with self._lock:
            self.requests.append((path, host))

    def _log_post(self, path: str, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.posts.append((path, headers, body))

    def start(self) -> HttpsServer:
        self.stopping.clear()
        self._server = _TlsHttpServer((self.host, 0), self.cert.server_context(), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> HttpsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
