"""Roles split over processes scale with cores (issue 18), on PostgreSQL.

    .venv/bin/python bench/role_scaling.py --messages 3000 --rounds 3
    .venv/bin/python bench/role_scaling.py --messages 2000 --rounds 1 --layouts 1x1,2x2 --many 8,16

Each round runs every layout ``IxW`` (I SMTP intake processes, W worker processes; the order
alternates between rounds) on a fresh Sealmail with a fresh PostgreSQL database, set up as
``postfix_compare.py`` does (``sealmail init``, verified ``clinic.example`` with dual DKIM
keys, delivery by MX lookup over verified TLS into ``bench/sink.py``), in two phases so each
role is measured alone:

1. **intake**: I ``sealmail serve --role smtp`` processes, a port each (as behind a TCP load
   balancer; the client spreads its connections over them), take K 5 KB messages from
   ``--connections`` pipelined STARTTLS connections while no worker runs.  Accept rate = K /
   (first send → last 250); CPU per message of the intake processes and of their PostgreSQL
   backends.
2. **delivery**: the intake processes stop; W ``sealmail serve --role worker`` processes start
   and drain the K queued messages into the sink.  Delivery rate = (K − 1) / (first → last
   message at the sink), so the workers' start-up (imports, first connections) is not in it;
   CPU per message of the workers and their backends over the drain.
3. ``postfix_compare.check_queue``: every accepted recipient delivered exactly once, nothing
   still leased, the sink has exactly K more — or the run stops with the violation.

``--many 8,16``: after the rounds, drains of K with that many workers each (most of them idle
on 2 cores): the rate shows whether claim contention (``FOR UPDATE SKIP LOCKED``) collapses it,
the check whether a recipient was lost or sent twice.  Needs PostgreSQL on 127.0.0.1:5432 and
nothing else busy on the machine: rates, not CPU, are what is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import postfix_compare as pc  # noqa: E402
from mta_load import smtp_load  # noqa: E402
from throughput import SEALMAIL, Harness, Sink, machine_description  # noqa: E402

_RUNS = itertools.count(1)


@dataclass
class Phase:
    rate: float
    cpu_ms: float  # the role's processes, per message
    pg_ms: float  # PostgreSQL backends of the bench database, per message
    conns: int = 0  # SMTP connections the sink accepted (each a TLS handshake)
    xacts: int = 0  # PostgreSQL transactions committed in the bench database (start-up included)


@dataclass
class LayoutRun:
    layout: str
    intake: Phase
    delivery: Phase
    check: str


def _cpu(pids: list[int]) -> dict[int, float]:
    return pc.tree_cpu(pids)


def run_layout(h: Harness, sink: Sink, intakes: int, workers: int, args: argparse.Namespace) -> LayoutRun:
    # A home of its own per run (``start_sealmail`` names it after the path).
    spec = pc.PathSpec(f"scale-{next(_RUNS)}-{intakes}x{workers}", "smtp", "postgresql", True, False)
    opts = argparse.Namespace(**vars(args))
    opts.intakes, opts.workers = intakes, 0
    sm = pc.start_sealmail(h, sink, spec, opts)
    k = args.messages
    expected = sink.state().count + args.warmup + k
    try:
        if (
            asyncio.run(smtp_load(sm.ports, args.warmup, 100, args.connections, 5120, "warm", sm.login))
            != args.warmup
        ):
            raise RuntimeError("warm-up not accepted")
        cpu0, pg0 = _cpu(sm.pids), pc.pg_backend_cpu()
        t0 = time.time()
        ok = asyncio.run(
            smtp_load(sm.ports, k, 100, args.connections, 5120, f"scale-{intakes}x{workers}", sm.login)
        )
        t1 = time.time()
        cpu1, pg1 = _cpu(sm.pids), pc.pg_backend_cpu()
        if ok != k:
            raise RuntimeError(f"only {ok}/{k} accepted")
        intake = Phase(k / (t1 - t0), 1000 * pc.delta(cpu0, cpu1) / k, 1000 * pc.delta(pg0, pg1) / k)
    finally:
        for c in reversed(sm.procs):
            h.stop(c)
    sm.procs.clear()
    delivery = drain(h, sink, sm, workers, k + args.warmup, args)
    try:
        check = pc.check_queue(sm, sink, expected)
    except RuntimeError:
        explain(sm)
        raise
    return LayoutRun(f"{intakes} intake + {workers} worker", intake, delivery, check)


def explain(sm: pc.Sealmail) -> None:
    """What the attempts of recipients tried more than once say (printed before the failure)."""
    import sqlalchemy as sa

    engine = sa.create_engine(sm.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    query = sa.text(
        "SELECT a.recipient_id, a.worker, a.status, a.reason, a.smtp_code, left(a.detail, 120), a.started_at "
        "FROM attempts a JOIN (SELECT recipient_id FROM attempts GROUP BY 1 HAVING count(*) > 1 LIMIT 5) d "
        "USING (recipient_id) ORDER BY a.recipient_id, a.started_at"
    )
    with engine.connect() as conn:
        for row in conn.execute(sa.text("SELECT status, reason, count(*) FROM attempts GROUP BY 1, 2")):
            print("  attempts:", tuple(row), flush=True)
        for row in conn.execute(query):
            print("  twice:", tuple(row), flush=True)
    engine.dispose()


def drain(h: Harness, sink: Sink, sm: pc.Sealmail, workers: int, n: int, args: argparse.Namespace) -> Phase:
    """Start ``workers`` worker processes on a queue of ``n`` messages; measure the drain from
    the first message at the sink (the workers' start-up is not in the rate or the CPU)."""
    base, conns0, xacts0 = sink.state().count, sink.state().conns, _commits(sm)
    home = Path(sm.env["SEALMAIL_HOME"])
    if args.warm:
        _hold(sm, True)
    for i in range(workers):
        sm.procs.append(h.spawn(f"sealmail-worker{i}", [SEALMAIL, "serve", "--role", "worker"], sm.env, home))
    try:
        deadline = time.monotonic() + args.timeout
        if args.warm:
            # Every worker up (imports, pools, first empty claims) before any mail is due, so
            # the drain is not shared with the start-up of the others (16 interpreters on 2 cores).
            while _listening(sm) < workers:
                if time.monotonic() > deadline:
                    raise TimeoutError("workers did not start")
                time.sleep(0.05)
            # What the started workers cost while idle (housekeeping loops, polls), over 3 s.
            time.sleep(1.0)
            idle0, xacts0 = _cpu(sm.pids), _commits(sm)
            time.sleep(3.0)
            idle1, xacts1 = _cpu(sm.pids), _commits(sm)
            print(
                f"idle {workers} worker(s): {pc.delta(idle0, idle1) / 3:.3f} CPU s/s, "
                f"{(xacts1 - xacts0) / 3:.1f} PG transactions/s",
                flush=True,
            )
            xacts0 = xacts1
            _hold(sm, False)
        while (st := sink.state()).count == base:
            if time.monotonic() > deadline:
                raise TimeoutError("no delivery started")
            time.sleep(0.005)
        cpu0, pg0, done0, t0 = _cpu(sm.pids), pc.pg_backend_cpu(), st.count - base, time.time()
        st = sink.wait_for(base + n, args.timeout)
        cpu1, pg1 = _cpu(sm.pids), pc.pg_backend_cpu()
    finally:
        for c in reversed(sm.procs):
            h.stop(c)
    m = n - done0
    rate, cpu, pg = (
        m / max(st.last - t0, 1e-9),
        1000 * pc.delta(cpu0, cpu1) / m,
        1000 * pc.delta(pg0, pg1) / m,
    )
    return Phase(rate, cpu, pg, sink.state().conns - conns0, _commits(sm) - xacts0)


def _hold(sm: pc.Sealmail, hold: bool) -> None:
    """Make the queued recipients due tomorrow (``hold``) or now: an UPDATE rings no bell, so
    the workers find them at their next poll."""
    import sqlalchemy as sa

    when = "now() + interval '1 day'" if hold else "now() - interval '1 second'"
    engine = sa.create_engine(sm.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE recipients SET next_attempt_at = {when} WHERE status = 'queued'"))
    finally:
        engine.dispose()


def _listening(sm: pc.Sealmail) -> int:
    """Workers idle on the queue bell: each LISTENs after its first (here empty) claim."""
    where = "datname = current_database() AND query LIKE 'LISTEN %'"
    return _scalar(sm, f"SELECT count(*) FROM pg_stat_activity WHERE {where}")


def _scalar(sm: pc.Sealmail, query: str) -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(sm.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())
    finally:
        engine.dispose()


def _commits(sm: pc.Sealmail) -> int:
    """Transactions committed in the bench database so far (the statistics of exited backends
    are in; a live one's within its next second)."""
    return _scalar(sm, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")


def render(runs: list[LayoutRun], many: list[tuple[int, Phase, str]], args: argparse.Namespace) -> str:
    layouts = sorted({r.layout for r in runs}, key=lambda s: [int(x) for x in s.split() if x.isdigit()])
    out = [
        f"{args.messages} × 5 KB messages per phase, {args.rounds} round(s), "
        f"{args.connections} client connections, PostgreSQL; "
        + ("drains start when every worker is up (--warm); " if args.warm else "")
        + ", ".join(f"{k} {v}" for k, v in machine_description().items()),
        "",
        "| layout | intake msg/s (rounds) | intake CPU ms/msg (+ PG) "
        "| delivery msg/s (rounds) | delivery CPU ms/msg (+ PG) | lost / duplicated |",
        "|---|---:|---:|---:|---:|---|",
    ]
    med = statistics.median
    for name in layouts:
        rs = [r for r in runs if r.layout == name]
        ir = ", ".join(f"{r.intake.rate:.0f}" for r in rs)
        dr = ", ".join(f"{r.delivery.rate:.0f}" for r in rs)
        ic, ip = med(r.intake.cpu_ms for r in rs), med(r.intake.pg_ms for r in rs)
        dc, dp = med(r.delivery.cpu_ms for r in rs), med(r.delivery.pg_ms for r in rs)
        irate, drate = med(r.intake.rate for r in rs), med(r.delivery.rate for r in rs)
        out.append(
            f"| {name} | **{irate:.0f}** ({ir}) | {ic:.2f} (+{ip:.2f}) "
            f"| **{drate:.0f}** ({dr}) | {dc:.2f} (+{dp:.2f}) | 0 / 0 |"
        )
    for w, ph, check in many:
        out.append(
            f"| drain only, {w} workers | – | – | **{ph.rate:.0f}** "
            f"| {ph.cpu_ms:.2f} (+{ph.pg_ms:.2f}) | 0 / 0 ({check}; {ph.conns} SMTP connections, "
            f"{ph.xacts} PG transactions) |"
        )
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=2000, help="K messages per phase")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--layouts", default="1x1,2x2", help="comma-separated IxW (intake x worker processes)")
    p.add_argument("--many", default="", help="comma-separated worker counts for extra drains (e.g. 8,16)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--set", action="append", help="SEALMAIL_X=value for the Sealmail processes")
    p.add_argument("--pg-database", default="sealmail_bench_scaling")
    p.add_argument(
        "--warm",
        action="store_true",
        help="drains: hold the queue until every worker has started (the rate without their start-up)",
    )
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    args.recipients = 100
    layouts = [tuple(int(x) for x in item.split("x")) for item in args.layouts.split(",") if item]
    many = [int(x) for x in args.many.split(",") if x]
    if many:
        # Many processes each keep a pool: keep them within PostgreSQL's max_connections.
        args.set = [*(args.set or []), "SEALMAIL_DATABASE_POOL_SIZE=3", "SEALMAIL_DATABASE_MAX_OVERFLOW=2"]
    # A deferral (the bench's DNS server can time out while many workers start at once) is
    # retried within the run rather than after the default 5 minutes.
    args.set = [*(args.set or []), "SEALMAIL_RETRY_FIRST_SECONDS=3"]
    pc.use_pg_database(args.pg_database)
    h = Harness(keep=False)
    runs: list[LayoutRun] = []
    extra: list[tuple[int, Phase, str]] = []
    sink: Sink | None = None
    try:
        sink = Sink(h)
        for r in range(args.rounds):
            for intakes, workers in layouts if r % 2 == 0 else list(reversed(layouts)):
                run = run_layout(h, sink, intakes, workers, args)
                print(
                    f"round {r + 1} {run.layout}: intake {run.intake.rate:.0f} msg/s {run.intake.cpu_ms:.2f} "
                    f"(+{run.intake.pg_ms:.2f}) ms/msg; delivery {run.delivery.rate:.0f} msg/s "
                    f"{run.delivery.cpu_ms:.2f} (+{run.delivery.pg_ms:.2f}) ms/msg, "
                    f"{run.delivery.conns} SMTP connections, {run.delivery.xacts} PG transactions; "
                    f"{run.check}",
                    flush=True,
                )
                runs.append(run)
        for w in many:
            run = run_layout(h, sink, 1, w, args)
            d = run.delivery
            print(
                f"drain with {w} workers: {d.rate:.0f} msg/s {d.cpu_ms:.2f} (+{d.pg_ms:.2f}) ms/msg; "
                f"{d.conns} SMTP connections, {d.xacts} PG transactions; {run.check}",
                flush=True,
            )
            extra.append((w, run.delivery, run.check))
    finally:
        if sink is not None:
            # How many queries the workers' resolvers sent the bench DNS server (it says at exit).
            h.stop(sink.child)
            for line in sink.child.log.read_text(errors="replace").splitlines():
                if line.startswith("sink dns:"):
                    print(line, flush=True)
        h.cleanup()
    table = render(runs, extra, args)
    print("\n" + table)
    if args.output:
        when = time.strftime("%Y-%m-%d %H:%M %Z")
        args.output.write_text(
            f"`.venv/bin/python bench/role_scaling.py {' '.join(sys.argv[1:])}` — {when}\n\n{table}\n"
        )


if __name__ == "__main__":
    main()
