"""Load generators of ``bench/postfix_compare.py``: the same messages over SMTP or the API.

SMTP: ``conns`` parallel connections with STARTTLS (certificates not verified: the load
generator is not what is measured), AUTH PLAIN when given credentials, one message per
transaction, the connection reused for the next.  Two clients: ``pipelined`` (default), a
raw asyncio client that sends MAIL FROM, RCPT TO and DATA in one write when the server
offers PIPELINING (RFC 2920), as Postfix's smtp client, Exchange and the Microsoft 365 and
Google Workspace outbound connectors do, and talks lockstep otherwise; ``aiosmtplib``, the
earlier client, one command and one reply at a time.  API: keep-alive HTTP/1.1 connections
POSTing ``/v1/messages``, with the minimal client from ``bench/throughput.py``.  Both send the
same 5 KB text to the same ``rcpts`` recipients, so both MTAs get the same messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import sys
import time
from collections.abc import Iterable, Iterator
from email.utils import formatdate

from throughput import DOMAIN, _read_response

SENDER = "noreply@clinic.example"  # sealmail init's verified, DKIM-keyed domain
TEXT_LINE = "The quick brown fox jumps over the lazy dog; Sealmail benchmark text 0123456789.\r\n"
CLIENTS = ("pipelined", "aiosmtplib")
EHLO_NAME = b"bench-client.localhost"
TRANSACTION_TIMEOUT = 60.0  # seconds for one command group and its replies
# The replies that let a transaction go on, to MAIL, RCPT (RFC 5321 §3.4: 251 too) and DATA.
_WANTED = ((250,), (250, 251), (354,))


def rcpt(j: int) -> str:
    return f"patient-{j}@{DOMAIN}"


def body_text(size: int) -> str:
    return (TEXT_LINE * (size // len(TEXT_LINE) + 1))[:size]


def raw_message(i: int, tag: str, size: int) -> tuple[str, bytes]:
    to = rcpt(i)
    head = (
        f"From: Bench Clinic <{SENDER}>\r\nTo: <{to}>\r\nSubject: Benchmark message {tag}-{i}\r\n"
        f"Date: {formatdate(localtime=False)}\r\nMessage-ID: <{tag}-{i}@clinic.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    return to, head.encode() + body_text(size).encode()


async def smtp_load(
    port: int | list[int],
    n: int,
    rcpts: int,
    conns: int,
    size: int,
    tag: str,
    login: tuple[str, str] | None,
    latencies: list[float] | None = None,
    client: str = "pipelined",
) -> int:
    """Send ``n`` messages over ``conns`` parallel STARTTLS connections; returns how many got 250.

    Several ports (one per intake process): connection ``j`` goes to ``ports[j % len(ports)]``.
    ``latencies`` gets each 250's seconds from MAIL FROM (the transaction, not the connection).
    """
    messages = (raw_message(i % rcpts, f"{tag}-{i}", size) for i in range(n))
    return await smtp_send(port, messages, conns, login, latencies, client)


async def smtp_send(
    port: int | list[int],
    messages: Iterable[tuple[str, bytes]],
    conns: int,
    login: tuple[str, str] | None,
    latencies: list[float] | None = None,
    client: str = "pipelined",
) -> int:
    """Send ``messages`` (recipient, CRLF message) from :data:`SENDER` over ``conns`` connections
    with ``client`` (one of :data:`CLIENTS`); returns how many got 250 to their data."""
    if client not in CLIENTS:
        raise ValueError(f"client {client!r}: one of {', '.join(CLIENTS)}")
    ports = port if isinstance(port, list) else [port]
    todo = iter(messages)
    run = _pipelined_client if client == "pipelined" else _aiosmtplib_client
    counts = await asyncio.gather(*(run(ports[j % len(ports)], todo, login, latencies) for j in range(conns)))
    return sum(counts)


# -- the pipelining client ---------------------------------------------------------------------------
class SmtpReplyError(Exception):
    """A reply the conversation cannot go on from (the connection is dropped and made again)."""


def _tls_context() -> ssl.SSLContext:
    # Not ``ssl.create_default_context()``: loading the system CA bundle costs 20-60 ms of CPU,
    # for nothing when the certificate is not verified (the load generator is not what is measured).
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One reply, multi-line or not (RFC 5321 §4.2.1: ``250-`` continues, ``250 `` ends)."""
    text = b""
    while True:
        line = await reader.readuntil(b"\r\n")
        text += line
        if line[3:4] != b"-":
            code = line[:3]
            if not code.isdigit() or line[3:4] not in (b" ", b"\r"):
                raise SmtpReplyError(f"malformed reply {text[-200:]!r}")
            return int(code), text


async def _expect(reader: asyncio.StreamReader, code: int, what: str) -> bytes:
    got, text = await _reply(reader)
    if got != code:
        raise SmtpReplyError(f"{what}: {text[-200:]!r}")
    return text


class _Session:
    """One STARTTLS connection, authenticated when given credentials, that sends transactions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pipelining: bool) -> None:
        self.reader, self.writer, self.pipelining = reader, writer, pipelining

    @classmethod
    async def open(cls, port: int, login: tuple[str, str] | None, tls: ssl.SSLContext) -> _Session:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(TRANSACTION_TIMEOUT):
                await _expect(reader, 220, "greeting")
                writer.write(b"EHLO " + EHLO_NAME + b"\r\n")
                if b"STARTTLS" not in (await _expect(reader, 250, "EHLO")).upper():
                    raise SmtpReplyError("STARTTLS not offered")
                writer.write(b"STARTTLS\r\n")
                await _expect(reader, 220, "STARTTLS")
                await writer.start_tls(tls)
                writer.write(b"EHLO " + EHLO_NAME + b"\r\n")
                features = (await _expect(reader, 250, "EHLO after STARTTLS")).upper().split(b"\r\n")
                if login:
                    token = base64.b64encode(f"\0{login[0]}\0{login[1]}".encode())
                    writer.write(b"AUTH PLAIN " + token + b"\r\n")
                    await _expect(reader, 235, "AUTH PLAIN")
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, any(line[4:].strip() == b"PIPELINING" for line in features))

    async def send(self, to: str, data: bytes) -> tuple[bool, bytes]:
        """One transaction; ``(True, b"")`` on 250 to the data, else ``(False, the refusal)``.

        With PIPELINING, MAIL, RCPT and DATA go in one write and their replies are read in
        order (RFC 2920 §3.1); the message follows only a 354.  A refused transaction is
        reset (RSET) so the connection can go on."""
        reader, writer = self.reader, self.writer
        mail = b"MAIL FROM:<" + SENDER.encode() + b">\r\n"
        commands = (mail, b"RCPT TO:<" + to.encode() + b">\r\n", b"DATA\r\n")
        async with asyncio.timeout(TRANSACTION_TIMEOUT):
            refused = b""
            if self.pipelining:
                writer.write(b"".join(commands))
            for command, wanted in zip(commands, _WANTED, strict=True):
                if not self.pipelining:
                    writer.write(command)
                got, text = await _reply(reader)
                if got == 421:
                    raise SmtpReplyError(f"closing: {text!r}")
                if got not in wanted:
                    refused = refused or text
                    if not self.pipelining:
                        break  # lockstep: nothing more was sent
            if refused:
                if got == 354:  # a server that took DATA with no recipient: end it empty
                    writer.write(b".\r\n")
                    await _reply(reader)
                writer.write(b"RSET\r\n")
                await _expect(reader, 250, "RSET")
                return False, refused
            writer.write(_dot_stuffed(data))
            got, text = await _reply(reader)
        if got == 421:
            raise SmtpReplyError(f"closing: {text!r}")
        return got == 250, b"" if got == 250 else text

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                self.writer.write(b"QUIT\r\n")
                await _reply(self.reader)
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


def _dot_stuffed(data: bytes) -> bytes:
    """``data`` (CRLF line ends, as :func:`raw_message` writes) with lines that start with "."
    doubled (RFC 5321 §4.5.2) and the end-of-data line."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


async def _pipelined_client(
    port: int, todo: Iterator[tuple[str, bytes]], login: tuple[str, str] | None, latencies: list[float] | None
) -> int:
    ok = 0
    tls = _tls_context()
    session: _Session | None = None
    for to, data in todo:
        for attempt in range(3):
            try:
                if session is None:
                    session = await _Session.open(port, login, tls)
                began = time.perf_counter()
                accepted, refusal = await session.send(to, data)
            except (SmtpReplyError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                if attempt == 2:
                    print(f"  smtp send failed: {exc!r}", file=sys.stderr)
                if session is not None:
                    session.abort()
                session = None
                continue
            if accepted:
                if latencies is not None:
                    latencies.append(time.perf_counter() - began)
                ok += 1
            else:
                print(f"  smtp refused: {refusal[-200:]!r}", file=sys.stderr)
            break
    if session is not None:
        await session.quit()
    return ok


# -- the lockstep aiosmtplib client (the earlier one, for comparison) ----------------------------------
async def _aiosmtplib_client(
    port: int, todo: Iterator[tuple[str, bytes]], login: tuple[str, str] | None, latencies: list[float] | None
) -> int:
    import aiosmtplib

    ok = 0
    smtp: aiosmtplib.SMTP | None = None
    for to, data in todo:
        for attempt in range(3):
            try:
                if smtp is None:
                    smtp = aiosmtplib.SMTP(
                        hostname="127.0.0.1", port=port, start_tls=True, validate_certs=False, timeout=60
                    )
                    await smtp.connect()
                    if login:
                        await smtp.login(*login)
                began = time.perf_counter()
                await smtp.sendmail(SENDER, [to], data)
                if latencies is not None:
                    latencies.append(time.perf_counter() - began)
                ok += 1
                break
            except (aiosmtplib.SMTPException, OSError) as exc:
                if attempt == 2:
                    print(f"  smtp send failed: {exc!r}", file=sys.stderr)
                with contextlib.suppress(Exception):
                    if smtp is not None:
                        smtp.close()
                smtp = None
    if smtp is not None:
        with contextlib.suppress(Exception):
            await smtp.quit()
    return ok


async def api_load(
    port: int | list[int],
    key: str,
    n: int,
    rcpts: int,
    conns: int,
    size: int,
    tag: str,
    latencies: list[float] | None = None,
) -> int:
    """POST ``n`` messages over ``conns`` keep-alive HTTP/1.1 connections; returns the 202 count.

    ``latencies`` gets each 202's seconds from the request's first byte written.
    """
    todo = iter(range(n))
    ok = 0
    text = body_text(size)

    def request(i: int) -> bytes:
        body = json.dumps(
            {
                "from": f"Bench Clinic <{SENDER}>",
                "to": [rcpt(i % rcpts)],
                "subject": f"Benchmark message {tag}-{i}",
                "text": text,
                "stream": "phi",
            }
        ).encode()
        return (
            b"POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + key.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n\r\n" + body
        )  # fmt: skip

    ports = port if isinstance(port, list) else [port]

    async def client(j: int) -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", ports[j % len(ports)])
        try:
            for i in todo:
                data = request(i)
                began = time.perf_counter()
                writer.write(data)
                status, body = await _read_response(reader)
                if status == 202:
                    if latencies is not None:
                        latencies.append(time.perf_counter() - began)
                    ok += 1
                else:
                    print(f"  api {status}: {body[:200]!r}", file=sys.stderr)
        finally:
            writer.close()

    await asyncio.gather(*(client(j) for j in range(conns)))
    return ok
