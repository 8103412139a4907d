"""An on-path attacker for SMTP: a TCP relay that strips STARTTLS and records the clear text.

It listens on a loopback address, relays every connection to an upstream MX (a real
:class:`tests.support.smtp_sink.SmtpSink`), and

* removes the ``STARTTLS`` line from every multi-line reply (the EHLO response), fixing
  the continuation markers so the reply stays well-formed (RFC 5321 §4.2.1);
* answers a ``STARTTLS`` command itself with ``454`` should a client send one anyway
  (RFC 3207 §4: "TLS not available due to temporary reason"), never forwarding it;
* records every byte that crossed it, both directions: exactly what a passive observer
  on the path would read.

The client therefore sees a server without STARTTLS, which is what a downgrade attacker
produces; whatever the client sends next crosses in clear and is in ``captured``.
Threads with blocking sockets: one acceptor, two pumps per connection; ``stop`` closes
everything it opened.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


def _strip(reply: list[bytes]) -> list[bytes]:
    """One complete reply (its lines) without STARTTLS, continuation markers repaired."""
    kept = [line for line in reply if line[4:].strip().upper() != b"STARTTLS"]
    if not kept:
        return reply
    fixed = [line[:3] + b"-" + line[4:] for line in kept[:-1]]
    last = kept[-1]
    return [*fixed, last[:3] + b" " + last[4:]]


class StartTlsStripper:
    def __init__(self, host: str, port: int, upstream: tuple[str, int]) -> None:
        self.host = host
        self.upstream = upstream
        self._lock = threading.Lock()
        self._captured = bytearray()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]

    @property
    def captured(self) -> bytes:
        """Everything that crossed the relay, in order of arrival (both directions)."""
        with self._lock:
            return bytes(self._captured)

    def start(self) -> StartTlsStripper:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stopping.set()
        # Closing alone does not wake a thread blocked in accept() on Linux (the join below
        # then waited out its 5 s); shutting the listener down does.
        _close(self._listener)
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> StartTlsStripper:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- relaying -----------------------------------------------------------------------------
    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            self._spawn(self._from_server, server, client)
            self._spawn(self._from_client, client, server)

    def _record(self, data: bytes) -> None:
        with self._lock:
            self._captured += data

    def _from_server(self, server: socket.socket, client: socket.socket) -> None:
        reader = server.makefile("rb")
        reply: list[bytes] = []
        try:
            while line := reader.readline():
                reply.append(line)
                if len(line) >= 4 and line[3:4] == b"-":
                    continue  # more lines of this reply follow
                out = b"".join(_strip(reply))
                reply = []
                self._record(out)
                client.sendall(out)
        except OSError:
            pass
        finally:
            _close(client)

    def _from_client(self, client: socket.socket, server: socket.socket) -> None:
        reader = client.makefile("rb")
        try:
            while line := reader.readline():
                self._record(line)
                if line.strip().upper() == b"STARTTLS":
                    refusal = b"454 4.7.0 TLS not available due to temporary reason\r\n"
                    self._record(refusal)
                    client.sendall(refusal)
                    continue
                server.sendall(line)
        except OSError:
            pass
        finally:
            _close(server)


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
