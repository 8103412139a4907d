"""CPU per accepted message of the SMTP gateway, in process (issue 18).

    .venv/bin/python bench/intake_cpu.py --engine sqlite --messages 2000 --threads 4
    .venv/bin/python bench/intake_cpu.py --engine postgresql --profile /tmp/intake.prof
    .venv/bin/python bench/intake_cpu.py --door smtp --messages 2000      # the whole gateway

What the SMTP gateway does after DATA — ``submission_from_raw`` then ``Messages.accept``
(DLP screen, sender check, seal, group commit) — called from ``--threads`` threads the way
the gateway's connections do, on a fresh database with the product's defaults
(SQLite ``synchronous=FULL``).  No network, no TLS, no worker: CPU time of this process
(``getrusage``) per message is the figure, which a loaded shared machine disturbs far less
than a rate.  ``--profile FILE`` runs one thread under cProfile instead (batches of one).

``--door smtp`` runs the real gateway (``build_gateway``: STARTTLS, AUTH PLAIN, aiosmtpd)
in this process and ``bench/mta_load.py``'s client with ``--threads`` connections in a child
process, so this process's CPU is the gateway's alone (py-spy it with ``--gil``).
``--client pipelined`` (default) sends MAIL, RCPT and DATA in one write (RFC 2920),
``--client aiosmtplib`` one command at a time (the client before 2026-12-04).

``--door api`` runs the API role as ``sealmail serve --role api`` does (``runtime.serve``:
uvicorn, the FastAPI app with the console mounted, API-key authentication, the per-key rate
limit — in the database on PostgreSQL) and ``bench/mta_load.py``'s keep-alive HTTP/1.1
client POSTing ``/v1/messages`` over ``--threads`` connections in a child process.

On PostgreSQL the CPU of the server's backends serving this run's database (its own, named
after this process) is printed beside it, read from ``/proc``, so the server must run on
this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH))

from mta_load import CLIENTS, api_load, raw_message, smtp_load  # noqa: E402
from proc_cpu import cpu, pg_cpu  # noqa: E402
from throughput import free_port  # noqa: E402

from sealmail.app import build_gateway, build_services, intake_limits  # noqa: E402
from sealmail.crypto.devcert import create_dev_certificates  # noqa: E402
from sealmail.domain.addresses import Address, parse_address  # noqa: E402
from sealmail.domain.tls_policy import Stream  # noqa: E402
from sealmail.messages.compose import submission_from_raw  # noqa: E402
from sealmail.net.event_loop import loop_factory  # noqa: E402
from sealmail.runtime import configure_logging, serve  # noqa: E402
from sealmail.schema import metadata  # noqa: E402
from sealmail.store import db, migrate  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
# One database per run: several sessions may bench on the same server at once.
PG_DB = f"sealmail_intake_bench_{os.getpid()}"


Mark = tuple[float, float, float]


def mark() -> Mark:
    """This process's CPU, the wall clock and the PostgreSQL backends' CPU, now."""
    return cpu(), time.perf_counter(), pg_cpu(PG_DB)


def database(engine_name: str, home: Path) -> str:
    if engine_name == "sqlite":
        url = f"sqlite:///{home / 'sealmail.db'}"
    else:
        admin = sa.create_engine(db.normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{PG_DB}"'))
        admin.dispose()
        url = PG_URL.rsplit("/", 1)[0] + "/" + PG_DB
    engine = db.create_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    assert metadata.tables
    return url


def drop_database() -> None:
    admin = sa.create_engine(db.normalize_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--profile", type=Path, help="cProfile one thread; write pstats here")
    p.add_argument("--door", choices=["store", "smtp", "api"], default="store")
    p.add_argument("--client", choices=CLIENTS, default=CLIENTS[0], help="--door smtp: the SMTP load client")
    p.add_argument("--synchronous", default="FULL", help="SQLite synchronous (product default FULL)")
    args = p.parse_args()

    from conftest import make_settings, make_tenant  # tests/conftest.py: the same fixtures

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = make_settings(
            home,
            database(args.engine, home),
            sqlite_synchronous=args.synchronous,
            smtp_hostname="bench.local",
            # The per-key limit is still counted on every request; it only never refuses here.
            api_rate_limit_per_minute=10_000_000,
            api_rate_limit_max_per_minute=10_000_000,
            api_host="127.0.0.1",
            api_port=free_port(),
        )
        configure_logging(settings)  # warning, as `serve` runs it: no line per message
        svc = build_services(settings)
        tenant = make_tenant(svc)
        limits = intake_limits(settings)
        rcpt_cache: dict[str, Address] = {}

        def store(i: int) -> None:
            to, raw = raw_message(i % 100, f"b-{i}", args.size)
            if to not in rcpt_cache:
                rcpt_cache[to] = parse_address(to, "to")
            sub = submission_from_raw(
                raw,
                "noreply@clinic.example",
                (rcpt_cache[to],),
                source="smtp",
                message_id_domain="bench.local",
                limits=limits,
                stream=Stream.PHI,
            )
            svc.messages.submit(tenant.principal, sub)

        n = args.messages
        if args.door == "smtp":
            start, end = smtp_door(svc, settings, tenant.id, home, args)
        elif args.door == "api":
            # On the loop ``sealmail serve`` runs (uvloop by default), as the API role runs.
            with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
                start, end = runner.run(api_door(svc, settings.api_port, tenant.api_key, args))
        elif args.profile:
            for i in range(args.warmup):
                store(i)
            prof = cProfile.Profile()
            start = mark()
            prof.enable()
            for i in range(n):
                store(i)
            prof.disable()
            end = mark()
            prof.dump_stats(str(args.profile))
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        else:
            for i in range(args.warmup):
                store(i)
            counter = iter(range(n))
            lock = threading.Lock()

            def run() -> None:
                while True:
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    store(i)

            threads = [threading.Thread(target=run) for _ in range(args.threads)]
            start = mark()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            end = mark()
        svc.close()
        if args.engine == "postgresql":
            drop_database()
        (c0, t0, pg0), (c1, t1, pg1) = start, end
        backends = (
            f" (+ PostgreSQL backends {1000 * (pg1 - pg0) / n:.2f})" if args.engine == "postgresql" else ""
        )
        print(
            f"{args.engine} threads={args.threads} messages={n}: "
            f"CPU {1000 * (c1 - c0) / n:.2f} ms/msg{backends}, {n / (t1 - t0):.0f} msg/s wall"
        )


def _latency(tag: str, seconds: list[float]) -> None:
    """The measured run's acknowledgement latency, printed by the client process."""
    if tag != "m" or not seconds:
        return
    seconds.sort()
    p50, p99 = (1000 * seconds[min(len(seconds) - 1, int(q * len(seconds)))] for q in (0.5, 0.99))
    print(f"  client: latency p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)


def _client(port: int, n: int, conns: int, size: int, tag: str, login: tuple[str, str], client: str) -> None:
    seconds: list[float] = []
    sent = asyncio.run(smtp_load(port, n, 100, conns, size, tag, login, seconds, client))
    _latency(tag, seconds)
    if sent != n:
        raise SystemExit(f"only {sent} of {n} messages got a 250")


def smtp_door(
    svc: Any, settings: Any, tenant_id: str, home: Path, args: argparse.Namespace
) -> tuple[Mark, Mark]:
    """The gateway in this process, the client in a child: ``mark()`` before and after the run."""
    _, cert, key = create_dev_certificates(home / "tls", ["127.0.0.1", "localhost"])
    update = {"smtp_host": "127.0.0.1", "smtp_port": 0, "smtp_tls_cert": cert, "smtp_tls_key": key}
    gateway = build_gateway(svc, settings.model_copy(update=update))
    gateway.start()
    _, user, password = svc.tenancy.create_smtp_credential(tenant_id, actor="bench", stream=Stream.PHI)
    ctx = multiprocessing.get_context("spawn")
    try:
        warm = ctx.Process(
            target=_client,
            args=(gateway.port, args.warmup, args.threads, args.size, "w", (user, password), args.client),
        )
        warm.start()
        warm.join()
        run = ctx.Process(
            target=_client,
            args=(gateway.port, args.messages, args.threads, args.size, "m", (user, password), args.client),
        )
        start = mark()
        run.start()
        run.join()
        end = mark()
        if run.exitcode != 0:
            raise SystemExit("the client failed")
    finally:
        gateway.stop()
    return start, end


def _api_client(port: int, key: str, n: int, conns: int, size: int, tag: str) -> None:
    seconds: list[float] = []
    sent = asyncio.run(api_load(port, key, n, 100, conns, size, tag, seconds))
    _latency(tag, seconds)
    if sent != n:
        raise SystemExit(f"only {sent} of {n} messages got a 202")


async def api_door(svc: Any, port: int, key: str, args: argparse.Namespace) -> tuple[Mark, Mark]:
    """The API role on this process's event loop, the client in a child: marks before and after."""
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(svc, ["api"], stop=stop, ready=ready))
    await ready.wait()
    ctx = multiprocessing.get_context("spawn")

    async def client(n: int, tag: str) -> int | None:
        proc = ctx.Process(target=_api_client, args=(port, key, n, args.threads, args.size, tag))
        proc.start()
        await asyncio.to_thread(proc.join)
        return proc.exitcode

    try:
        if await client(args.warmup, "w") != 0:
            raise SystemExit("the warm-up client failed")
        start = mark()
        code = await client(args.messages, "m")
        end = mark()
        if code != 0:
            raise SystemExit("the client failed")
    finally:
        stop.set()
        await server
    return start, end


if __name__ == "__main__":
    main()
