"""CPU per message of the delivery worker's last two steps, in process (issue 18).

    .venv/bin/python bench/outbound_cpu.py [--messages 3000] [--concurrency 10]
        [--pipelining] [--profile FILE]

The two steps every TLS delivery pays after the worker has decided what to send:
``DkimStep.sign`` (canonical form, RSA-2048 + Ed25519 signatures) and
``OutboundTransport.deliver`` (route plan from cached DNS, pooled connection, MAIL/RCPT/
DATA, dot-stuffing, TLS writes) to ``bench/sink.py`` in a child process: aiosmtpd with
mandatory STARTTLS, a certificate verified against a throwaway CA (``require_verified``,
as the ``phi`` stream asks).  ``--pipelining`` makes the sink advertise PIPELINING
(RFC 2920) as Postfix and every large MX do; aiosmtpd does not by default, and
``throughput.py`` runs without it.

No database and no worker loop: CPU time of this process (``getrusage``) per message,
for ``sign`` alone, ``deliver`` alone and both, which a loaded shared machine disturbs far
less than a rate.  ``--profile FILE`` writes cProfile stats of one sign + deliver round.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import trustme

from sealmail.crypto.dkim import DkimSigner, generate_key
from sealmail.delivery.signing import DkimStep
from sealmail.delivery.smtp_client import OutboundTransport
from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.messages.queue import QueuedMessage
from sealmail.net.dns import Resolver

BENCH = Path(__file__).resolve().parent
DOMAIN, MX_NAME, SINK_IP = "patients.sealmail-bench.org", "mx.sealmail-bench.org", "127.0.0.2"
SENDER = "clinic.example"


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def message(n: int, size: int = 5120) -> bytes:
    """A 5 KB text message as the API's composer stores it (headers, then a text body)."""
    line = b"The quick brown fox jumps over the lazy dog; Sealmail benchmark text 0123456789.\r\n"
    # The number in the first body line makes every body differ, as every patient's does:
    # the signer remembers recent bodies (a message to several domains is hashed once).
    head = (
        b"Received: from sealmail (sealmail.test) id bench%d\r\n"
        b"From: Bench Clinic <noreply@clinic.example>\r\nTo: p%d@patients.sealmail-bench.org\r\n"
        b"Subject: Benchmark message %d\r\nDate: Fri, 04 Dec 2026 17:00:00 +0000\r\n"
        b"Message-ID: <bench-%d@clinic.example>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        b"Dear patient %d,\r\n"
    ) % (n, n, n, n, n)
    return head + line * (size // len(line))


class _Identities:
    """The one lookup ``DkimStep`` makes: the signer of the sender domain."""

    def __init__(self) -> None:
        keys = [generate_key(SENDER, "ed", "ed25519-sha256"), generate_key(SENDER, "rsa", "rsa-sha256")]
        self.signer = DkimSigner(keys)

    def dkim_signer(self, tenant_id: str, domain: str) -> DkimSigner | None:
        return self.signer


def queued(n: int) -> QueuedMessage:
    now = datetime.now(UTC)
    return QueuedMessage(
        f"m{n}", "t1", "phi", "noreply@clinic.example", "require_verified", now, None, None, None, b"", {}
    )


def start_sink(tmp: Path, pipelining: bool) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert(MX_NAME)
    ca_file, cert, key = tmp / "ca.pem", tmp / "mx.crt", tmp / "mx.key"
    ca.cert_pem.write_to_path(str(ca_file))
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    log = tmp / "sink.log"
    argv = [
        sys.executable, str(BENCH / "sink.py"), "--host", SINK_IP, "--cert", str(cert), "--key", str(key),
        "--state", str(tmp / "sink.state"), "--domain", DOMAIN, "--mx", MX_NAME,
        *(["--pipelining"] if pipelining else []),
    ]  # fmt: skip
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = re.search(r"READY (\d+) (\d+)", log.read_text(errors="replace"))
        if found:
            return child, int(found.group(1)), int(found.group(2)), ca_file
        if child.poll() is not None:
            break
        time.sleep(0.05)
    child.kill()
    raise RuntimeError(f"sink did not start:\n{log.read_text(errors='replace')}")


async def measure(args: argparse.Namespace, smtp_port: int, dns_port: int, ca_file: Path) -> None:
    step = DkimStep(_Identities())  # type: ignore[arg-type]  # duck-typed: only dkim_signer is called
    transport = OutboundTransport(
        ehlo_hostname="bench.clinic.example",
        resolver=Resolver([("127.0.0.1", dns_port)]),
        ca_file=str(ca_file),
        port=smtp_port,
        max_connections_per_destination=args.concurrency,
    )
    messages = [(queued(n), message(n)) for n in range(args.messages)]
    signed = [step.sign(msg, raw) for msg, raw in messages]

    async def deliver(n: int, payload: bytes) -> None:
        rcpt = f"p{n}@{DOMAIN}"
        policy = TlsPolicy.REQUIRE_VERIFIED
        attempts = await transport.deliver(DOMAIN, "bounce@clinic.example", [rcpt], payload, policy)
        if attempts[0].status is not AttemptStatus.DELIVERED or not attempts[0].tls.verified:
            raise RuntimeError(f"not delivered over verified TLS: {attempts[0]}")

    async def run(work: Callable[[int], Awaitable[None]]) -> float:
        queue = iter(range(args.messages))

        async def lane() -> None:
            for n in queue:
                await work(n)

        start = cpu()
        await asyncio.gather(*(lane() for _ in range(args.concurrency)))
        return (cpu() - start) / args.messages * 1000

    async def sign_only(n: int) -> None:
        step.sign(*messages[n])

    async def deliver_only(n: int) -> None:
        await deliver(n, signed[n])

    async def both(n: int) -> None:
        await deliver(n, step.sign(*messages[n]))

    await run(deliver_only)  # warm-up: connections opened, DNS cached
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await run(both)
        profiler.disable()
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile).sort_stats("cumulative").print_stats(40)
    figures = {}
    for name, work in (("sign", sign_only), ("deliver", deliver_only), ("sign + deliver", both)):
        figures[name] = sorted([await run(work) for _ in range(args.repeats)])[args.repeats // 2]
    await transport.close()
    load = os.getloadavg()[0]
    print(
        f"{args.messages} × 5 KB, {args.concurrency} lanes, PIPELINING {'on' if args.pipelining else 'off'}, "
        f"load {load:.1f}; CPU ms/msg (median of {args.repeats}): "
        + ", ".join(f"{name} {value:.3f}" for name, value in figures.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="outbound-cpu-") as tmp:
        child, smtp_port, dns_port, ca_file = start_sink(Path(tmp), args.pipelining)
        try:
            asyncio.run(measure(args, smtp_port, dns_port, ca_file))
        finally:
            child.terminate()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
