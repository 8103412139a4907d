"""A real SMTP server (aiosmtpd) on loopback that records what it receives.

It runs its own event loop in a thread, binds ``host`` (e.g. ``127.0.0.2``) on port 0
or a given port, and answers by recipient local part:

* ``tempfail-451@…`` → ``451 4.3.0`` at RCPT
* ``permfail-550@…`` → ``550 5.1.1`` at RCPT
* ``drop@…``         → the connection is closed after the message data arrives,
                       before the reply (the ambiguous case for the client)
* ``tempfail-once@…`` → ``451 4.3.0`` the first time this address is seen, then ``250``
* ``hold@…``         → DATA is answered only once ``sink.release()`` is called (a stuck
                       delivery, for killing the worker mid-transaction); nothing is
                       recorded when the client has gone away meanwhile
* anything else      → ``250``

Options: STARTTLS with a certificate from :mod:`tests.support.ca`, TLS required
before MAIL, AUTH (PLAIN/LOGIN, only after TLS), and ``broken_tls`` (STARTTLS is
answered with 220 and the connection is then closed, so the handshake fails), and
``requiretls`` (REQUIRETLS, RFC 8689, offered after STARTTLS and accepted on MAIL).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from tests.support.ca import IssuedCert


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    tls_version: str | None
    connection_id: int
    mail_options: tuple[str, ...]
    authenticated_as: str | None


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].lower()


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local = _local_part(address)
        if local.startswith("tempfail-451"):
            return "451 4.3.0 Temporary failure, try again later"
        if local.startswith("permfail-550"):
            return "550 5.1.1 Mailbox does not exist"
        if local.startswith("tempfail-once"):
            with self.sink._cond:
                first = address.lower() not in self.sink._seen_once
                self.sink._seen_once.add(address.lower())
            if first:
                return "451 4.3.0 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.sink.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        if self.sink.requiretls and session.ssl is not None:
            # RFC 8689 §4.1 / Exim: REQUIRETLS is advertised only once TLS is up.
            responses.insert(len(responses) - 1, "250-REQUIRETLS")
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if any(_local_part(r).startswith("drop") for r in envelope.rcpt_tos):
            if server.transport is not None:
                server.transport.abort()
            return "421 4.4.2 dropped"  # never reaches the client
        self.sink.data_started.set()
        if any(_local_part(r).startswith("hold") for r in envelope.rcpt_tos):
            # Wait on the test's release (bounded: 30 s), not on a clock.
            await asyncio.to_thread(self.sink.released.wait, 30)
            if server.transport is None or server.transport.is_closing():
                return "451 4.3.0 client went away"
        extra: dict[str, Any] = session.ssl or {}
        sslobj = extra.get("ssl_object")
        login = session.auth_data if session.authenticated else None
        self.sink._record(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                tls=session.ssl is not None,
                tls_version=sslobj.version() if sslobj is not None else None,
                connection_id=getattr(server, "connection_id", 0),
                mail_options=tuple(envelope.mail_options),
                authenticated_as=login.decode() if isinstance(login, bytes) else None,
            )
        )
        return "250 2.0.0 OK queued"


class _SinkSMTP(SMTP):
    """aiosmtpd's SMTP with connection counting and an optional broken STARTTLS."""

    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sink = sink
        self.connection_id = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None
        super().connection_made(transport)
        if first:
            self.connection_id = self.sink._new_connection(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._forget(self)
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # A client that pipelines (RFC 2920) sends MAIL … DATA in one write.
        if b"MAIL FROM" in data and data.rstrip().endswith(b"DATA"):
            with self.sink._cond:
                self.sink.pipelined_batches += 1
        super().data_received(data)

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._in_mail = True
        try:
            await super().smtp_MAIL(arg)
        finally:
            self._in_mail = False

    def _getparams(self, params: Any) -> Any:
        # aiosmtpd answers 555 to parameters it does not know; REQUIRETLS is known here
        # when advertised (and stays in envelope.mail_options for the test to read).
        offered = self.sink.requiretls and self._tls_protocol is not None and getattr(self, "_in_mail", False)
        return super()._getparams([p for p in params if not (offered and p.upper() == "REQUIRETLS")])

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.sink.broken_tls:
            await self.push("220 2.0.0 Ready to start TLS")
            if self.transport is not None:
                self.transport.close()
            return
        await super().smtp_STARTTLS(arg)


class SmtpSink:
    """Loopback SMTP server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        host: str = "127.0.0.2",
        port: int = 0,
        *,
        cert: IssuedCert | None = None,
        require_tls: bool = False,
        auth: dict[str, str] | None = None,
        broken_tls: bool = False,
        smtputf8: bool = True,
        hostname: str = "sink.test",
        pipelining: bool = False,
        requiretls: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.cert, self.require_tls, self.auth = cert, require_tls, auth
        self.broken_tls, self.smtputf8, self.hostname = broken_tls, smtputf8, hostname
        self._messages: list[ReceivedMessage] = []
        self.pipelining = pipelining
        self.requiretls = requiretls
        self.pipelined_batches = 0
        self._seen_once: set[str] = set()
        self.released = threading.Event()
        self.data_started = threading.Event()
        self._cond = threading.Condition()
        self._connections = 0
        self._live: set[_SinkSMTP] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    # -- observations -----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._cond:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted so far."""
        with self._cond:
            return self._connections

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until ``count`` messages arrived; fail with what did arrive."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(
                    f"sink {self.host}:{self.port} received {len(self._messages)} "
                    f"message(s) within {timeout:.1f}s, expected {count}"
                )
            return list(self._messages)

    def _record(self, message: ReceivedMessage) -> None:
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def _new_connection(self, protocol: _SinkSMTP) -> int:
        with self._cond:
            self._connections += 1
            self._live.add(protocol)
            self._cond.notify_all()
            return self._connections

    def _forget(self, protocol: _SinkSMTP) -> None:
        with self._cond:
            self._live.discard(protocol)

    # -- lifecycle --------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and self.auth is not None:
            user, password = data.login.decode(), data.password.decode()
            if self.auth.get(user) == password:
                return AuthResult(success=True, auth_data=data.login)
        return AuthResult(success=False, handled=False)

    def _factory(self) -> _SinkSMTP:
        assert self._loop is not None
        return _SinkSMTP(
            self,
            _Handler(self),
            hostname=self.hostname,
            tls_context=self.cert.server_context() if self.cert is not None else None,
            require_starttls=self.require_tls,
            enable_SMTPUTF8=self.smtputf8,
            authenticator=self._authenticate if self.auth is not None else None,
            auth_required=False,
            auth_require_tls=True,
            loop=self._loop,
        )

    def start(self) -> SmtpSink:
        ready = threading.Event()
        errors: list[OSError] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(
                    loop.create_server(self._factory, self.host, self.port)
                )
                self.port = self._server.sockets[0].getsockname()[1]
            except OSError as exc:
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            self._shutdown(loop)

        self._thread = threading.Thread(target=run, name=f"smtp-sink-{self.host}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def _shutdown(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._server is not None
        self._server.close()
        with self._cond:
            live = list(self._live)
        for protocol in live:
            if protocol.transport is not None:
                protocol.transport.close()
        loop.run_until_complete(self._server.wait_closed())
        # Let connection_lost callbacks and cancelled handler tasks finish.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    def release(self) -> None:
        """Let held DATA commands (``hold@…``) finish."""
        self.released.set()

    def stop(self) -> None:
        self.released.set()  # never leave a handler thread waiting past shutdown
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
