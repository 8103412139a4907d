"""CPU per delivered message of the delivery worker, in process (issue 18).

    .venv/bin/python bench/worker_cpu.py --engine postgresql --messages 2000
    .venv/bin/python bench/worker_cpu.py --engine sqlite --profile     # py-spy --gil this process
    .venv/bin/python bench/worker_cpu.py --engine sqlite --pgp 100     # the OpenPGP path
    .venv/bin/python bench/worker_cpu.py --pgp 100 --profile --no-gil  # py-spy, GIL-free C code too
    .venv/bin/python bench/worker_cpu.py --stream --clients 2          # mail trickling in meanwhile

``sealmail init`` a fresh home and database (verified ``clinic.example``, dual DKIM keys), queue
``--warmup`` + ``--messages`` messages through a ``serve --role api`` process (stopped before
the worker starts), then run the production worker (``build_worker``: SecureLine, DKIM,
verified TLS to ``bench/sink.py``'s MX) in this process.  The figure is this process's CPU
(``getrusage``) from the sink's ``--warmup``-th message to its last, divided by
``--messages``: no start-up, imports or cold caches, and nothing of the API or sink, so a
shared machine disturbs it far less than a rate.  On PostgreSQL the CPU of the worker's
backends over the same window (utime + stime from ``/proc`` of every ``postgres:`` process
on the bench database) is printed beside it as ``PG``.  Only the worker's own loop
runs (no webhook dispatcher, sweeper or schedules, which ``serve --role worker`` adds).

``--pgp N``: the messages cycle over N recipients, each with an OpenPGP certificate in the key
directory (uploaded before the queue is filled), so every message goes PGP/MIME-encrypted to its
recipient and the tenant archive key, signed, then DKIM-signed (``postfix_compare.py``'s
``-pgp`` paths; 100 recipients there too).

``--stream``: the API stays up and a child process queues the messages while the worker runs,
so the worker claims what trickles in (``--clients`` sets how fast: 2 gives a few hundred a
second) instead of draining a backlog; ``--cprofile FILE``: cProfile of the event loop's thread
(thread CPU clock; the recording and claiming threads are not in it).

Compare two trees by putting one's ``src`` first on ``PYTHONPATH``.  The PostgreSQL database is
``sealmail_worker_bench_<pid>`` (created and dropped here), so other benches can run meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import throughput as tp  # noqa: E402  # the bench's sink, harness and load generator
from proc_cpu import cpu, pg_cpu, sys_cpu  # noqa: E402

# Its own database (with the pid): another bench dropping a shared one would end this run.
tp.PG_DB = f"sealmail_worker_bench_{os.getpid()}"
tp.PG_URL = f"postgresql://postgres@127.0.0.1:5432/{tp.PG_DB}"


def upload_keys(env: dict[str, str], home: Path, n: int) -> None:
    """A certificate for each of the first ``n`` recipients (in a child: the instance's settings)."""
    out = subprocess.run(
        [sys.executable, __file__, "_keys", str(n)], env=env, cwd=home, capture_output=True, timeout=600,
        check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"key upload failed: {out.stderr.decode(errors='replace')[-3000:]}")


def keys_main(n: int) -> None:
    from sealmail.app import build_services
    from sealmail.config import Settings
    from sealmail.crypto import pgp

    services = build_services(Settings())  # type: ignore[call-arg]  # filled from SEALMAIL_*
    [tenant] = services.tenancy.list_tenants()
    for j in range(n):
        _secret, public = pgp.generate_tenant_key(f"Patient {j} <patient-queue-{j}@{tp.DOMAIN}>")
        services.keydir.upload(tenant.id, public, "bench")
    services.close()


def preload(ctx: tp.Ctx, engine: str) -> tuple[dict[str, str], Any]:
    """A fresh instance with every message queued; returns its environment.

    With ``--stream`` nothing is queued yet: the API stays up and the second value starts the
    load in a child process (its CPU is not this process's) once the worker runs.
    """
    env, home, key = tp.init_instance(ctx, engine, "worker-cpu")
    if ctx.args.pgp:
        upload_keys(env, home, ctx.args.pgp)
    api = tp.serve(ctx, env, home, "serve-api", ["api"])
    a = ctx.args
    n = a.warmup + a.messages
    try:
        port = int(env["SEALMAIL_API_PORT"])
        tp.wait_healthy(port, [api])
        if a.stream:
            argv = [sys.executable, __file__, "_load", str(port), key, str(n), str(a.clients), str(a.size)]
            argv.append(str(a.pgp))
            env["SEALMAIL_HOME"] = str(home)
            return env, lambda: ctx.harness.spawn("load", argv, dict(os.environ), BENCH)
        res = asyncio.run(tp.run_load(port, key, n, a.clients, a.size, "queue", 300, rcpts=a.pgp))
        if res.ok != n:
            raise RuntimeError(f"only {res.ok}/{n} accepted: {dict(res.statuses)} {dict(res.errors)}")
    finally:
        if not a.stream:
            ctx.harness.stop(api)
    env["SEALMAIL_HOME"] = str(home)
    return env, None


def load_main(port: int, key: str, n: int, clients: int, size: int, rcpts: int) -> None:
    res = asyncio.run(tp.run_load(port, key, n, clients, size, "queue", 300, rcpts=rcpts))
    if res.ok != n:
        raise SystemExit(f"only {res.ok}/{n} accepted: {dict(res.statuses)} {dict(res.errors)}")


def _loop_factory(settings: Any) -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        from sealmail.net.event_loop import loop_factory
    except ImportError:  # a tree from before SEALMAIL_EVENT_LOOP: asyncio's loop
        return None
    return loop_factory(settings.event_loop)


def run_worker(ctx: tp.Ctx, env: dict[str, str], start_load: Any = None) -> tuple[float, float, float, float]:
    """Deliver everything in this process; (CPU s, wall s, PG backends' CPU s, system CPU s) of
    the measured messages."""
    for k in [k for k in os.environ if k.startswith("SEALMAIL_")]:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith("SEALMAIL_")})
    os.chdir(env["SEALMAIL_HOME"])
    from sealmail.app import build_services, build_transport, build_worker
    from sealmail.config import Settings
    from sealmail.runtime import configure_logging

    settings = Settings()
    configure_logging(settings)
    svc = build_services(settings)
    a = ctx.args
    if not a.no_gc_settle:
        from sealmail import heap

        heap.settle()  # as ``sealmail serve`` does once its roles run
    base = ctx.sink.state().count
    marks: dict[str, tuple[float, float, float, float]] = {}
    done = threading.Event()

    def watch() -> None:
        # Polls the sink's state file (cheap next to a delivery) for the window's two ends.
        while not done.is_set():
            count = ctx.sink.state().count - base
            if "start" not in marks and count >= a.warmup:
                marks["start"] = (cpu(), time.perf_counter(), pg_cpu(tp.PG_DB), sys_cpu())
                if a.perf:
                    argv = ["perf", "record", "-F", "999", "-g", "-p", str(os.getpid()), "-o", a.perf]
                    perf.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                if a.profile:
                    name = f"{a.engine}-worker-cpu"
                    profilers.append(tp.Profiler(ctx.harness, os.getpid(), name, rate=400, gil=not a.no_gil))
            if count >= a.warmup + a.messages:
                marks["end"] = (cpu(), time.perf_counter(), pg_cpu(tp.PG_DB), sys_cpu())
                done.set()
                return
            time.sleep(0.02)

    profilers: list[tp.Profiler] = []
    perf: list[subprocess.Popen[bytes]] = []

    async def main() -> None:
        transport = build_transport(settings)
        worker = build_worker(svc, transport)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        if start_load is not None:
            start_load()  # --stream: mail is queued while the worker delivers
        while not done.is_set():
            await asyncio.sleep(0.05)
            if time.perf_counter() > deadline:
                break
        stop.set()
        await task
        await transport.close()

    deadline = time.perf_counter() + a.timeout
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    prof = None
    if a.cprofile:
        import cProfile

        # This thread's CPU only: the event loop's, not the threads recording and claiming.
        prof = cProfile.Profile(time.thread_time)
        prof.enable()
    with asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
        runner.run(main())  # the loop `serve` gives the worker (SEALMAIL_EVENT_LOOP)
    if prof is not None:
        prof.disable()
        prof.dump_stats(a.cprofile)
    done.set()
    watcher.join()
    for prof in profilers:
        ctx.profiles["worker"] = prof.stop()
    for recorder in perf:
        recorder.send_signal(signal.SIGINT)  # perf writes its file on Ctrl-C
        recorder.wait(timeout=60)
    svc.close()
    if "end" not in marks:
        raise TimeoutError(f"not delivered within {a.timeout} s")
    return tuple(e - s for e, s in zip(marks["end"], marks["start"], strict=True))  # type: ignore[return-value]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--no-gc-settle", action="store_true", help="keep CPython's default collector settings")
    p.add_argument("--size", type=int, default=5120)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--pgp", type=int, default=0, metavar="N", help="N recipients with a certificate")
    p.add_argument("--profile", action="store_true", help="py-spy --gil this process over the window")
    p.add_argument(
        "--no-gil",
        action="store_true",
        help="with --profile: sample every running thread (C code that releases the GIL counts too)",
    )
    p.add_argument("--perf", metavar="FILE", help="`perf record -g` this process over the window into FILE")
    p.add_argument("--set", action="append", metavar="SEALMAIL_X=value", help="extra Sealmail setting")
    p.add_argument(
        "--stream",
        action="store_true",
        help="queue the messages (an API process, a load child) while the worker delivers, not before",
    )
    p.add_argument("--cprofile", metavar="FILE", help="cProfile (thread CPU) the event loop's thread to FILE")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    harness = tp.Harness(keep=args.keep)
    try:
        ctx = tp.Ctx(args, harness, tp.Sink(harness))
        env, start_load = preload(ctx, args.engine)
        used, wall, pg, kernel = run_worker(ctx, env, start_load)
        label = f"{args.engine} worker" + (" (pgp)" if args.pgp else "")
        label += " (stream)" if args.stream else ""
        backends = f" + PG {1000 * pg / args.messages:.3f}" if args.engine == "postgresql" else ""
        per = 1000 * used / args.messages
        print(f"{label}: {args.messages} messages, CPU {per:.3f}{backends} ms/msg ", end="")
        print(f"(system {1000 * kernel / args.messages:.3f}), ", end="")
        print(f"{args.messages / wall:.0f} msg/s wall")
        for line in ctx.profiles.get("worker", []):
            print(line)
    finally:
        harness.cleanup()
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_keys"]:
        keys_main(int(sys.argv[2]))
        sys.exit(0)
    if sys.argv[1:2] == ["_load"]:
        port, key, n, clients, size, rcpts = sys.argv[2:8]
        load_main(int(port), key, int(n), int(clients), int(size), int(rcpts))
        sys.exit(0)
    sys.exit(main())
