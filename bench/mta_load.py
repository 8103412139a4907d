"""Load generators of ``bench/postfix_compare.py``: the same messages over SMTP or the API.

SMTP: ``conns`` parallel connections with STARTTLS (certificates not verified: the load
generator is not what is measured), AUTH PLAIN when given credentials, one message per
transaction.  API: keep-alive HTTP/1.1 connections POSTing ``/v1/messages``, with the
minimal client from ``bench/throughput.py``.  Both send the same 5 KB text to the same
``rcpts`` recipients, so both MTAs get the same messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from email.utils import formatdate

from throughput import DOMAIN, _read_response

SENDER = "noreply@clinic.example"  # sealmail init's verified, DKIM-keyed domain
TEXT_LINE = "The quick brown fox jumps over the lazy dog; Sealmail benchmark text 0123456789.\r\n"


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
) -> int:
    """Send ``n`` messages over ``conns`` parallel STARTTLS connections; returns how many got 250.

    Several ports (one per intake process): connection ``j`` goes to ``ports[j % len(ports)]``.
    ``latencies`` gets each 250's seconds from MAIL FROM (the transaction, not the connection).
    """
    import aiosmtplib

    todo = iter(range(n))
    ok = 0
    ports = port if isinstance(port, list) else [port]

    async def client(j: int) -> None:
        nonlocal ok
        port = ports[j % len(ports)]
        smtp: aiosmtplib.SMTP | None = None
        for i in todo:
            to, data = raw_message(i % rcpts, f"{tag}-{i}", size)
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

    await asyncio.gather(*(client(j) for j in range(conns)))
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
