"""CPU per message of the SMTP protocol alone: the listener (aiosmtpd + ``smtpd/``), no store.

The listener runs in this process with STARTTLS and a handler that hands each DATA to the
executor and answers 250 at once; the client runs in a child process (4 connections, 5 KB
messages), in lockstep (one command, one reply, as aiosmtplib does) or pipelined (MAIL, RCPT
and DATA in one write, RFC 2920). The figure is this process's CPU per message.

    .venv/bin/python bench/smtpd_cpu.py --messages 4000 [--pipelined]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import ssl
import tempfile
from pathlib import Path
from typing import Any

from sealmail.crypto.devcert import create_dev_certificates
from sealmail.smtpd.server import ListenerHandler, ListenerOptions, SmtpListener, server_tls_context

BODY = b"Subject: x\r\n\r\n" + b"A line of an ordinary message body, nothing in it.\r\n" * 100


class _Handler(ListenerHandler):
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self.run(len, envelope.original_content)
        return "250 2.0.0 Ok: queued"


async def _line(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if line[3:4] != b"-":
            return line


async def _connection(port: int, n: int, pipelined: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _line(reader)
    writer.write(b"EHLO client.test\r\n")
    await _line(reader)
    writer.write(b"STARTTLS\r\n")
    await _line(reader)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    await writer.start_tls(context)
    writer.write(b"EHLO client.test\r\n")
    await _line(reader)
    commands = [b"MAIL FROM:<a@clinic.example>\r\n", b"RCPT TO:<b@example.org>\r\n", b"DATA\r\n"]
    for _ in range(n):
        if pipelined:
            writer.write(b"".join(commands))
            for _ in commands:
                await _line(reader)
        else:
            for command in commands:
                writer.write(command)
                await _line(reader)
        writer.write(BODY + b".\r\n")
        assert (await _line(reader)).startswith(b"250")
    writer.write(b"QUIT\r\n")
    await _line(reader)
    writer.close()


def _client(port: int, n: int, connections: int, pipelined: bool) -> None:
    async def run() -> None:
        await asyncio.gather(*(_connection(port, n // connections, pipelined) for _ in range(connections)))

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--pipelined", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        _, cert, key = create_dev_certificates(Path(home), ["127.0.0.1"])
        options = ListenerOptions("127.0.0.1", 0, "mx.test", 10_000_000)
        listener = SmtpListener(_Handler(), options, server_tls_context(cert, key, None))
        listener.start()
        try:
            spawn = multiprocessing.get_context("spawn")
            warm = spawn.Process(target=_client, args=(listener.port, 400, args.connections, args.pipelined))
            warm.start()
            warm.join()
            run = spawn.Process(
                target=_client, args=(listener.port, args.messages, args.connections, args.pipelined)
            )
            before = resource.getrusage(resource.RUSAGE_SELF)
            run.start()
            run.join()
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            listener.stop()
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    mode = "pipelined" if args.pipelined else "lockstep"
    print(f"{mode} messages={args.messages}: listener CPU {1000 * used / args.messages:.3f} ms/msg")


if __name__ == "__main__":
    main()
