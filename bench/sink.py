"""Benchmark MX: a counting, body-discarding aiosmtpd server with mandatory STARTTLS,
plus the loopback DNS server that points the benchmark domain at it.

Run by ``bench/throughput.py`` as its own process (so its CPU is measured apart)::

    python bench/sink.py --host 127.0.0.2 --cert C --key K --state FILE \
        --domain bench.test --mx mx.bench.test

It prints one line ``READY <smtp_port> <dns_port>`` on stdout once both listen, then
rewrites ``--state`` (atomically, every 50 ms) as ``count rcpts first_ts last_ts conns``
(timestamps are ``time.time()``; 0 when nothing arrived yet).  SIGTERM/SIGINT stop it.

The DNS server runs in a child process of its own (``--dns-only``, ended when the sink's
pipe to it closes): in the sink's process its threads waited for the GIL behind the TLS of
every arriving message, and 8-16 workers starting at once overflowed its socket (issue 18).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.support.dns_server is reused, not copied

import dns.message  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdataclass  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.rrset  # noqa: E402
from aiosmtpd.smtp import SMTP, Envelope, Session  # noqa: E402
from tests.support.dns_server import DnsServer  # noqa: E402


class AuthoritativeDnsServer(DnsServer):
    """The test DNS server plus what every real authoritative server sends: an SOA in the
    authority section of negative answers (RFC 2308 §3), so resolvers may cache them.

    Without it the client's resolver (correctly) caches no NXDOMAIN/NODATA answer, and the
    bench would pay an AAAA query for the MX host on every delivery — and two WKD host
    lookups per address — that no production zone would cause.
    """

    def __init__(self, host: str, zone: str) -> None:
        # Room for thousands of queued queries (a real server's queues are far deeper than one
        # Python loop answering one query at a time); the kernel caps it at net.core.rmem_max.
        super().__init__(host, udp_receive_buffer=4 << 20)
        self.zone = zone.rstrip(".").lower()

    def answer(self, wire: bytes, max_size: int) -> bytes | None:
        out = super().answer(wire, max_size)
        if out is None:
            return None
        response = dns.message.from_wire(out)
        if response.answer or response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return out
        soa = f"ns.{self.zone}. hostmaster.{self.zone}. 1 3600 600 86400 300"
        response.authority.append(
            dns.rrset.from_text_list(f"{self.zone}.", 300, dns.rdataclass.IN, dns.rdatatype.SOA, [soa])
        )
        return response.to_wire(max_size=max_size)


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.rcpts = 0
        self.first = 0.0
        self.last = 0.0
        self.conns = 0
        self.plaintext = 0  # messages that arrived without TLS (must stay 0)


class Handler:
    def __init__(self, counter: Counter, pipelining: bool = False) -> None:
        self.c = counter
        self.pipelining = pipelining

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            # RFC 2920: aiosmtpd reads commands one line at a time, so it can take them
            # pipelined; it only does not say so.  Postfix and every large MX do.
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        now = time.time()
        c = self.c
        if not c.first:
            c.first = now
        c.last = now
        c.count += 1
        c.rcpts += len(envelope.rcpt_tos)
        if session.ssl is None:
            c.plaintext += 1
        # Discard the body: nothing is kept between messages.
        envelope.content = envelope.original_content = None
        return "250 2.0.0 OK discarded"


class CountingSMTP(SMTP):
    def __init__(self, counter: Counter, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counter = counter
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._counted:  # STARTTLS calls this again on the same protocol
            self._counted = True
            self._counter.conns += 1
        super().connection_made(transport)


def _write_state(path: Path, c: Counter) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{c.count} {c.rcpts} {c.first:.6f} {c.last:.6f} {c.conns} {c.plaintext}\n")
    os.replace(tmp, path)


async def main(args: argparse.Namespace, dns_port: int) -> None:
    counter = Counter()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()

    def factory() -> CountingSMTP:
        return CountingSMTP(
            counter,
            Handler(counter, args.pipelining),
            hostname=args.mx,
            tls_context=tls,
            require_starttls=True,
            enable_SMTPUTF8=True,
            data_size_limit=50 * 1024 * 1024,
            loop=loop,
        )

    server = await loop.create_server(factory, args.host, args.port, backlog=512)
    smtp_port = server.sockets[0].getsockname()[1]
    print(f"READY {smtp_port} {dns_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    state = Path(args.state)
    try:
        while not stop.is_set():
            _write_state(state, counter)
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except TimeoutError:
                pass
    finally:
        _write_state(state, counter)
        server.close()


class _TypeCounts(list):  # type: ignore[type-arg]
    """DnsServer appends every query to a list; the bench makes millions: count them by type."""

    def __init__(self) -> None:
        super().__init__()
        self.by_type: dict[str, int] = {}

    def append(self, item: tuple[str, str]) -> None:
        self.by_type[item[1]] = self.by_type.get(item[1], 0) + 1


def serve_dns(args: argparse.Namespace) -> None:
    """``--dns-only``: the bench zone, answered until stdin (the sink's pipe) closes."""
    # The zone apex above the bench domain ("sealmail-bench.org"): its SOA covers every name.
    dns = AuthoritativeDnsServer("127.0.0.1", args.domain.split(".", 1)[1]).start()
    dns.add(args.domain, "MX", f"10 {args.mx}.")
    dns.add(args.mx, "A", args.host)
    counts = _TypeCounts()
    dns.queries = counts
    print(f"DNS {dns.port}", flush=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the sink ends it (a ^C reaches both)
    sys.stdin.read()
    dns.stop()
    print(f"sink dns: queries {sum(counts.by_type.values())} {counts.by_type}", file=sys.stderr, flush=True)


def start_dns() -> tuple[subprocess.Popen[str], int]:
    # The same arguments (zone, MX address), plus the role.
    argv = [sys.executable, __file__, *sys.argv[1:], "--dns-only"]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().split()
    if len(line) != 2 or line[0] != "DNS":
        child.kill()
        raise RuntimeError(f"the DNS server did not start: {line}")
    return child, int(line[1])


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.2")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--domain", default="bench.test")
    p.add_argument("--mx", default="mx.bench.test")
    p.add_argument("--pipelining", action="store_true", help="advertise PIPELINING (RFC 2920)")
    p.add_argument("--dns-only", action="store_true", help="(internal) be the sink's DNS server")
    a = p.parse_args()
    if a.dns_only:
        serve_dns(a)
        sys.exit(0)
    dns_child, port = start_dns()
    try:
        asyncio.run(main(a, port))
    finally:
        assert dns_child.stdin is not None
        dns_child.stdin.close()
        dns_child.wait(timeout=10)
