"""Sealmail vs stock Postfix, end to end, side by side (issue 18).

    .venv/bin/python bench/postfix_compare.py                     # quick: 100 msgs x 3 rounds, 5 paths
    .venv/bin/python bench/postfix_compare.py --messages 5000 --rounds 5 --paths smtp-sqlite-split
    make bench-postfix ARGS="--messages 1000 --rounds 3"

One STARTTLS sink (``bench/sink.py``: mandatory STARTTLS, counts and discards) receives from
both MTAs:

* **Postfix** — Debian's package, a private instance (``bench/postfix_stock.py``) on a
  loopback high port relaying to the sink with ``smtp_tls_security_level = encrypt`` and TLS
  connection reuse;
* **Sealmail** — ``sealmail serve`` processes on a fresh home and database per path,
  delivering by MX lookup (loopback DNS) over *verified* TLS (``phi`` stream,
  ``require_verified``) with dual DKIM (Ed25519 + RSA-2048, created by ``sealmail init``);
  the PGP paths upload an OpenPGP certificate for every recipient first, so every message
  is PGP/MIME-encrypted before it is signed.

A path is ``<intake>-<engine>-<procs>[-pgp]``: intake ``smtp`` (the submission gateway,
STARTTLS + AUTH PLAIN) or ``api`` (``POST /v1/messages``); engine ``sqlite`` or ``pg``;
procs ``one`` (one ``sealmail serve --role <intake> --role worker`` command: since the sixth
pass it runs the worker in a child process on a machine with 2+ cores, the default
``SEALMAIL_WORKER_PROCESSES=auto``; ``--set SEALMAIL_WORKER_PROCESSES=0`` measures the old single
process) or ``split`` (intake process + ``--workers`` worker processes, each its own
command).  Postfix always gets SMTP: the ratio compares end-to-end rates into the same sink.

Each round sends the same K messages (5 KB text, the same recipients) from the same client
(``--connections`` parallel STARTTLS SMTP connections, or keep-alive HTTP connections for
the API) to one MTA, waits until the sink has all K, then does the same with the other;
the order alternates every round.  The SMTP client (``--client``) is ``pipelined`` by
default: MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920), as
real senders do; ``aiosmtplib`` is the earlier lockstep client.  The client runs in this
process; its own CPU per message (``getrusage`` over the send) is printed too.
Rate = K / (first byte sent → last message counted at the sink).  CPU = utime+stime from
``/proc`` of the MTA's processes and their direct children (``serve``'s worker child) over
the round, children reaped by them included (Postfix's ``master`` reaps every daemon that
exits), plus, for PostgreSQL paths, the backends connected to the bench database
(``--pg-database``, default ``sealmail_bench``: give concurrent runs their own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import postfix_stock  # noqa: E402
import throughput  # noqa: E402
from mta_load import CLIENTS, api_load, rcpt, smtp_load  # noqa: E402
from throughput import (  # noqa: E402
    CLK_TCK,
    SEALMAIL,
    SINK_IP,
    Child,
    Harness,
    Profiler,
    Sink,
    free_port,
    machine_cpu,
    machine_description,
    wait_healthy,
)

ISSUE_PATHS = "smtp-sqlite-split,smtp-pg-split,api-pg-split,api-pg-one,smtp-sqlite-split-pgp"


# -- CPU accounting ------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return [raw[raw.find("(") + 1 : raw.rfind(")")], *raw.rsplit(")", 1)[1].split()]


def tree_cpu(roots: list[int], comms: frozenset[str] | None = None) -> dict[int, float]:
    """CPU seconds of ``roots`` and their direct children, each root's reaped children included.

    Keyed by pid; a daemon that exits moves its time into its parent's cutime/cstime, so
    the sum over two snapshots stays continuous."""
    out: dict[int, float] = {}
    root_set = set(roots)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        pid = int(d.name)
        st = _stat(pid)
        if st is None:
            continue
        ppid = int(st[2])
        if pid in root_set or (ppid in root_set and (comms is None or st[0] in comms)):
            own = int(st[12]) + int(st[13])
            reaped = int(st[14]) + int(st[15])
            out[pid] = (own + reaped) / CLK_TCK
    return out


def pg_backend_cpu() -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends connected to the bench database."""
    out: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if not cmd.startswith(b"postgres:") or f" {throughput.PG_DB} ".encode() not in cmd:
            continue
        st = _stat(int(d.name))
        if st is not None:
            out[int(d.name)] = (int(st[12]) + int(st[13])) / CLK_TCK
    return out


def use_pg_database(name: str) -> None:
    """The bench database for this run: dropped and created per pg path, its backends counted."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise SystemExit(f"bad --pg-database {name!r}: lower-case letters, digits and _")
    throughput.PG_DB = name
    throughput.PG_URL = throughput.PG_URL.rsplit("/", 1)[0] + "/" + name


def delta(a: dict[int, float], b: dict[int, float]) -> float:
    return sum(v - a.get(pid, 0.0) for pid, v in b.items())


# -- Sealmail instance ----------------------------------------------------------------------------------
@dataclass
class PathSpec:
    name: str
    intake: str  # smtp | api
    engine: str  # sqlite | postgresql
    split: bool
    pgp: bool

    @classmethod
    def parse(cls, name: str) -> PathSpec:
        parts = name.split("-")
        if len(parts) not in (3, 4) or parts[0] not in ("smtp", "api") or parts[1] not in ("sqlite", "pg"):
            raise SystemExit(f"bad path {name!r}: <smtp|api>-<sqlite|pg>-<one|split>[-pgp]")
        if parts[2] not in ("one", "split") or (len(parts) == 4 and parts[3] != "pgp"):
            raise SystemExit(f"bad path {name!r}: <smtp|api>-<sqlite|pg>-<one|split>[-pgp]")
        engine = "postgresql" if parts[1] == "pg" else "sqlite"
        return cls(name, parts[0], engine, parts[2] == "split", len(parts) == 4)


@dataclass
class Sealmail:
    spec: PathSpec
    env: dict[str, str]
    procs: list[Child] = field(default_factory=list)
    api_key: str = ""
    login: tuple[str, str] = ("", "")
    ports: list[int] = field(default_factory=list)  # one per intake process

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.procs]

    @property
    def database_url(self) -> str:
        return self.env["SEALMAIL_DATABASE_URL"] or f"sqlite:///{self.env['SEALMAIL_HOME']}/sealmail.db"


def sealmail_env(home: Path, engine: str, sink: Sink, extra: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALMAIL_")}
    env.update(
        {
            "SEALMAIL_HOME": str(home),
            "SEALMAIL_CONFIG": str(home / "none.toml"),
            "SEALMAIL_DATABASE_URL": throughput.PG_URL if engine == "postgresql" else "",
            "SEALMAIL_API_PORT": str(free_port()),
            "SEALMAIL_SMTP_PORT": str(free_port()),
            "SEALMAIL_CAPTURE_PORT": str(free_port()),
            "SEALMAIL_SMTP_INBOUND_PORT": "off",
            "SEALMAIL_OUTBOUND_MODE": "mx",
            "SEALMAIL_DNS_NAMESERVERS": json.dumps([f"127.0.0.1:{sink.dns_port}"]),
            "SEALMAIL_MX_PORT": str(sink.smtp_port),
            "SEALMAIL_TLS_CA_FILE": str(sink.ca_file),
            "SEALMAIL_MTA_STS_ENABLED": "false",
            "SEALMAIL_DANE_ENABLED": "false",
            "SEALMAIL_SMTP_HOSTNAME": "sealmail-bench.localhost",
            "SEALMAIL_LOG_LEVEL": "warning",
            # The bench's one API key sends far more than a client would per minute; the
            # per-key limit (600/min by default) is not what is measured.
            "SEALMAIL_API_RATE_LIMIT_PER_MINUTE": "10000000",
            "SEALMAIL_API_RATE_LIMIT_MAX_PER_MINUTE": "10000000",
        }
    )
    for item in extra:
        k, _, v = item.partition("=")
        env[k] = v
    return env


def setup_main(pgp_rcpts: int) -> None:
    """Run in a child process with the instance's environment: init, SMTP credential, keys."""
    from sealmail.app import build_services
    from sealmail.bootstrap import initialize
    from sealmail.config import Settings
    from sealmail.crypto import pgp
    from sealmail.domain.tls_policy import Stream

    settings = Settings()  # type: ignore[call-arg]  # pydantic-settings fills it from SEALMAIL_*
    result = initialize(settings, first_tenant="Bench Clinic")
    assert result.tenant_id is not None
    services = build_services(settings)
    _cid, user, password = services.tenancy.create_smtp_credential(result.tenant_id, "bench", Stream("phi"))
    for j in range(pgp_rcpts):
        _secret, public = pgp.generate_tenant_key(f"Patient {j} <{rcpt(j)}>")
        services.keydir.upload(result.tenant_id, public, "bench")
    services.close()
    print(json.dumps({"api_key": result.api_key, "user": user, "password": password}))


def wait_smtp(port: int, procs: list[Child], timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in procs:
            if c.popen.poll() is not None:
                raise RuntimeError(f"{c.name} exited:\n{c.log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if s.recv(3) == b"220":
                return
        time.sleep(0.1)
    raise TimeoutError(f"SMTP port {port} not ready")


def start_sealmail(h: Harness, sink: Sink, spec: PathSpec, args: argparse.Namespace) -> Sealmail:
    home = h.tmp / f"home-{spec.name}"
    home.mkdir()
    if spec.engine == "postgresql":
        h.pg_reset()
    env = sealmail_env(home, spec.engine, sink, args.set or [])
    out = subprocess.run(
        [sys.executable, __file__, "_setup", str(args.recipients if spec.pgp else 0)],
        env=env, cwd=home, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"setup failed: {out.stderr.decode(errors='replace')[-3000:]}")
    creds = json.loads(out.stdout.decode().strip().splitlines()[-1])
    sm = Sealmail(spec, env, api_key=creds["api_key"], login=(creds["user"], creds["password"]))
    intake = spec.intake
    port_var = "SEALMAIL_SMTP_PORT" if intake == "smtp" else "SEALMAIL_API_PORT"
    sm.ports = [int(env[port_var])]
    if spec.split:
        for i in range(args.intakes):
            # Each intake process listens on a port of its own; the client spreads its
            # connections over them (in production, a load balancer in front).
            own = dict(env)
            if i:
                own[port_var] = str(free_port())
                sm.ports.append(int(own[port_var]))
            name = f"sealmail-{intake}" + (str(i) if args.intakes > 1 else "")
            sm.procs.append(h.spawn(name, [SEALMAIL, "serve", "--role", intake], own, home))
        for i in range(args.workers):
            sm.procs.append(
                h.spawn(f"sealmail-worker{i}", [SEALMAIL, "serve", "--role", "worker"], env, home)
            )
    else:
        argv = [SEALMAIL, "serve", "--role", intake, "--role", "worker"]
        sm.procs.append(h.spawn("sealmail-one", argv, env, home))
    for port in sm.ports:
        if intake == "smtp":
            wait_smtp(port, sm.procs)
        else:
            wait_healthy(port, sm.procs)
    return sm


def check_queue(sm: Sealmail, sink: Sink, expected_sink: int) -> str:
    """Nobody lost, nobody twice: every recipient ever accepted is delivered with exactly one
    attempt, none is still leased, and the sink got exactly the messages sent (checked again
    after a pause, so a late duplicate shows).  Raises on a violation; returns a summary."""
    import sqlalchemy as sa

    engine = sa.create_engine(sm.database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    # The sink can count a message before the worker's next flush (every FLUSH_SECONDS) has
    # recorded it: wait, bounded, until nothing is still leased, then judge.
    deadline = time.monotonic() + 15
    try:
        while True:
            with engine.connect() as conn:
                by_status = dict(
                    conn.execute(sa.text("SELECT status, count(*) FROM recipients GROUP BY status")).all()
                )
                # Delivered attempts (two for one recipient is a duplicate) and all attempts
                # (a deferral retried later, e.g. a DNS timeout, is not).
                attempts = conn.execute(
                    sa.text(
                        "SELECT count(*) FILTER (WHERE status = 'delivered'), "
                        "count(DISTINCT recipient_id) FILTER (WHERE status = 'delivered'), count(*) "
                        "FROM attempts"
                    )
                ).one()
            if not by_status.get("delivering") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    total = sum(by_status.values())
    time.sleep(0.5)
    at_sink = sink.state().count
    problems = []
    if by_status.get("delivered", 0) != total:
        problems.append(f"recipients by status {by_status}")
    if tuple(attempts[:2]) != (total, total):
        problems.append(f"{attempts[0]} delivered attempts for {attempts[1]} of {total} recipients")
    if at_sink != expected_sink:
        problems.append(f"the sink has {at_sink} messages, expected {expected_sink}")
    if problems:
        raise RuntimeError("lost or duplicated recipients: " + "; ".join(problems))
    retried = attempts[2] - attempts[0]
    note = f" ({retried} deferred attempts retried)" if retried else ""
    return f"{total} recipients delivered once each{note}"


# -- rounds --------------------------------------------------------------------------------------------
@dataclass
class Measure:
    rate: float
    accept_rate: float  # messages / (first send -> the client's last 250): intake alone
    cpu_ms: float  # the MTA's own processes, per message
    pg_ms: float  # PostgreSQL backends of the bench database, per message
    sink_ms: float
    client_ms: float  # the load client itself (this process during the send), per message
    conns: int
    plaintext: int
    busy_pct: float  # whole machine, all cores
    others_pct: float  # share of all cores used by processes that are not the bench's
    per_proc: dict[str, float] = field(default_factory=dict)  # Sealmail ms/msg by process


def send(target: str, sm: Sealmail, pf_port: int, n: int, args: argparse.Namespace, tag: str) -> int:
    c, r, size = args.connections, args.recipients, args.size
    if target == "postfix":
        return asyncio.run(smtp_load(pf_port, n, r, c, size, tag, None, client=args.client))
    if sm.spec.intake == "smtp":
        return asyncio.run(smtp_load(sm.ports, n, r, c, size, tag, sm.login, client=args.client))
    return asyncio.run(api_load(sm.ports, sm.api_key, n, r, c, size, tag))


def own_cpu() -> float:
    """CPU seconds of this process: during ``send`` only the load client runs in it (its event
    loop and TLS, and the threads it uses: aiosmtplib builds each TLS context in one)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    target: str,
    sm: Sealmail,
    pf: postfix_stock.PrivatePostfix,
    sink: Sink,
    args: argparse.Namespace,
    tag: str,
) -> Measure:
    n = args.messages
    master = pf.master_pid()
    if master is None:
        raise RuntimeError(f"postfix master is gone:\n{pf.log_tail()}")
    roots, comms = ([master], postfix_stock.DAEMONS) if target == "postfix" else (sm.pids, None)
    base = sink.state()
    cpu0, pg0, sink0 = tree_cpu(roots, comms), pg_backend_cpu(), tree_cpu([sink.pid])
    m0, own0 = machine_cpu(), sum(os.times()[:2])
    t0, client0 = time.time(), own_cpu()
    ok = send(target, sm, pf.port, n, args, tag)
    client_s = own_cpu() - client0
    t_sent = time.time()
    if ok != n:
        raise RuntimeError(f"{target}: only {ok}/{n} accepted")
    st = sink.wait_for(base.count + n, args.timeout)
    # What the MTA still does once the sink has every message (Postfix: the smtp agents'
    # reports to qmgr, queue files removed; Sealmail: the worker's record flush) falls into
    # the next round measured on the same MTA, if any; ``--settle`` counts it in this one.
    time.sleep(args.settle)
    cpu1, pg1, sink1 = tree_cpu(roots, comms), pg_backend_cpu(), tree_cpu([sink.pid])
    m1, own1 = machine_cpu(), sum(os.times()[:2])
    if target == "sealmail":
        print(f"  check: {check_queue(sm, sink, base.count + n)}", flush=True)
    ours = delta(cpu0, cpu1) + delta(pg0, pg1) + delta(sink0, sink1) + own1 - own0
    total = max(m1[1] - m0[1], 1e-9)
    return Measure(
        rate=n / (st.last - t0),
        accept_rate=n / max(t_sent - t0, 1e-9),
        cpu_ms=1000 * delta(cpu0, cpu1) / n,
        pg_ms=1000 * delta(pg0, pg1) / n if target == "sealmail" else 0.0,
        sink_ms=1000 * delta(sink0, sink1) / n,
        client_ms=1000 * client_s / n,
        conns=st.conns - base.conns,
        plaintext=st.plaintext - base.plaintext,
        busy_pct=100 * (m1[0] - m0[0]) / total,
        others_pct=max(0.0, 100 * (m1[0] - m0[0] - ours) / total),
        per_proc=by_process(sm, cpu0, cpu1, n) if target == "sealmail" else {},
    )


def by_process(sm: Sealmail, cpu0: dict[int, float], cpu1: dict[int, float], n: int) -> dict[str, float]:
    """ms/msg of each Sealmail process the bench started and of their children (``sealmail
    serve``'s worker child on "one" paths), named after the process that started them."""
    out = {c.name: 1000 * (cpu1.get(c.pid, 0.0) - cpu0.get(c.pid, 0.0)) / n for c in sm.procs}
    parents = {pid: st[2] for pid in cpu1 if pid not in sm.pids and (st := _stat(pid)) is not None}
    for c in sm.procs:
        kids = sorted(pid for pid, ppid in parents.items() if ppid == str(c.pid))
        for i, pid in enumerate(kids):
            out[f"{c.name}/worker{i}"] = 1000 * (cpu1[pid] - cpu0.get(pid, 0.0)) / n
    return out


def run_path(
    h: Harness, sink: Sink, pf: postfix_stock.PrivatePostfix, spec: PathSpec, args: argparse.Namespace
) -> dict[str, Any]:
    sm = start_sealmail(h, sink, spec, args)
    try:
        for target in ("postfix", "sealmail"):  # warm-up: argon2 login, pooled connections, caches
            base = sink.state().count
            if send(target, sm, pf.port, args.warmup, args, f"warm-{spec.name}") != args.warmup:
                raise RuntimeError(f"{target}: warm-up not accepted")
            sink.wait_for(base + args.warmup, args.timeout)
        rounds: list[dict[str, Measure]] = []
        profs = [Profiler(h, c.pid, f"pfcmp-{spec.name}-{c.name}") for c in sm.procs] if args.profile else []
        if profs:
            time.sleep(1.0)  # let py-spy attach
        for r in range(args.rounds):
            order = ("postfix", "sealmail") if r % 2 == 0 else ("sealmail", "postfix")
            got = {t: measure(t, sm, pf, sink, args, f"{spec.name}-r{r}-{t}") for t in order}
            s, p = got["sealmail"], got["postfix"]
            print(
                f"  {spec.name} round {r + 1}: sealmail {s.rate:.1f} msg/s (accepted at "
                f"{s.accept_rate:.0f}) {s.cpu_ms + s.pg_ms:.1f} ms/msg, postfix {p.rate:.1f} msg/s "
                f"(accepted at {p.accept_rate:.0f}) "
                f"{p.cpu_ms:.1f} ms/msg, ratio {s.rate / p.rate:.2f}, "
                f"client {s.client_ms:.2f}/{p.client_ms:.2f} ms/msg, "
                f"others' CPU {s.others_pct:.0f}/{p.others_pct:.0f} %",
                flush=True,
            )
            rounds.append(got)
        write_profiles(spec, profs)
    finally:
        for c in reversed(sm.procs):
            h.stop(c)
    return summarize(spec, rounds)


def write_profiles(spec: PathSpec, profs: list[Profiler]) -> None:
    """py-spy summaries of every Sealmail process (folded stacks go to bench/results/ too)."""
    if not profs:
        return
    out = [f"# py-spy: Sealmail processes on `{spec.name}` during the measured rounds", ""]
    for prof in profs:
        out += [f"## {prof.name}", "", *prof.stop(), ""]
    dest = BENCH / "results" / f"profile-pfcmp-{spec.name}.md"
    dest.write_text("\n".join(out))
    print(f"  profile summary: {dest}", flush=True)


def summarize(spec: PathSpec, rounds: list[dict[str, Measure]]) -> dict[str, Any]:
    def med(target: str, attr: str) -> float:
        return statistics.median(float(getattr(r[target], attr)) for r in rounds)

    return {
        "path": spec.name,
        "sealmail_rate": med("sealmail", "rate"),
        "postfix_rate": med("postfix", "rate"),
        "ratio": statistics.median(r["sealmail"].rate / r["postfix"].rate for r in rounds),
        "ratios": [round(r["sealmail"].rate / r["postfix"].rate, 3) for r in rounds],
        "sealmail_cpu_ms": med("sealmail", "cpu_ms"),
        "pg_cpu_ms": med("sealmail", "pg_ms"),
        "postfix_cpu_ms": med("postfix", "cpu_ms"),
        "sink_ms": (med("sealmail", "sink_ms"), med("postfix", "sink_ms")),
        "client_ms": (med("sealmail", "client_ms"), med("postfix", "client_ms")),
        "per_proc": {
            name: statistics.median(r["sealmail"].per_proc[name] for r in rounds)
            for name in rounds[0]["sealmail"].per_proc
        },
        "conns": (med("sealmail", "conns"), med("postfix", "conns")),
        "plaintext": sum(r[t].plaintext for r in rounds for t in r),
        "busy": (med("sealmail", "busy_pct"), med("postfix", "busy_pct")),
        "others": (med("sealmail", "others_pct"), med("postfix", "others_pct")),
    }


def render(results: list[dict[str, Any]], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    lines = [
        "| path | Sealmail msg/s | Postfix msg/s | ratio (median) | per-round ratios | Sealmail CPU ms/msg "
        "(+ PG backends) | Postfix CPU ms/msg | CPU ratio | sink conns S/P | machine busy % S/P "
        "| others' CPU % S/P |",
        "|---|---:|---:|---:|---|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        scpu = r["sealmail_cpu_ms"] + r["pg_cpu_ms"]
        pg = f" (+{r['pg_cpu_ms']:.1f})" if r["pg_cpu_ms"] else ""
        lines.append(
            f"| {r['path']} | {r['sealmail_rate']:.1f} | {r['postfix_rate']:.1f} | **{r['ratio']:.2f}×** | "
            f"{', '.join(f'{x:.2f}' for x in r['ratios'])} | {r['sealmail_cpu_ms']:.1f}{pg} | "
            f"{r['postfix_cpu_ms']:.1f} | {scpu / max(r['postfix_cpu_ms'], 1e-9):.1f}× | "
            f"{r['conns'][0]:.0f}/{r['conns'][1]:.0f} | {r['busy'][0]:.0f}/{r['busy'][1]:.0f} | "
            f"{r['others'][0]:.0f}/{r['others'][1]:.0f} |"
        )
    lines.append("")
    for r in results:
        split = ", ".join(f"{k.removeprefix('sealmail-')} {v:.1f}" for k, v in r["per_proc"].items())
        lines.append(
            f"- {r['path']}: Sealmail CPU ms/msg by process: {split}; PostgreSQL backends "
            f"{r['pg_cpu_ms']:.1f}; sink {r['sink_ms'][0]:.1f} (Sealmail rounds) / {r['sink_ms'][1]:.1f} "
            f"(Postfix rounds); load client {r['client_ms'][0]:.2f} / {r['client_ms'][1]:.2f}"
        )
    plain = sum(r["plaintext"] for r in results)
    lines += [
        "",
        f"{args.messages} messages × {args.size} B per MTA per round, {args.rounds} interleaved rounds "
        f"(order alternates), {args.connections} client connections ({args.client} SMTP client), "
        f"sink PIPELINING {args.sink_pipelining}, "
        f"{args.recipients} recipients, "
        f"{args.intakes} intake and {args.workers} worker process(es) on split paths, "
        f"warm-up {args.warmup}. "
        f"Postfix {meta['postfix']}; "
        f"machine {meta['machine']['nproc']} CPU {meta['machine']['cpu']}; machine busy before start "
        f"{meta['busy_before']:.0f} %; messages that reached the sink without TLS: {plain}.",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--messages", type=int, default=100, help="K messages per MTA per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--paths", default=ISSUE_PATHS, help=f"comma-separated (default: {ISSUE_PATHS})")
    p.add_argument("--size", type=int, default=5120, help="text body bytes")
    p.add_argument("--connections", type=int, default=4, help="parallel client connections")
    p.add_argument(
        "--client",
        choices=CLIENTS,
        default=CLIENTS[0],
        help="SMTP load client: pipelined (MAIL, RCPT, DATA in one write when offered, RFC 2920) or "
        "aiosmtplib (lockstep, the earlier client)",
    )
    p.add_argument(
        "--sink-pipelining",
        choices=("on", "off"),
        default="off",
        help="whether the sink offers PIPELINING (RFC 2920; every large MX does); both MTAs then pipeline",
    )
    p.add_argument("--recipients", type=int, default=100, help="distinct recipients (keyed on -pgp paths)")
    p.add_argument("--workers", type=int, default=1, help="worker processes on -split paths")
    p.add_argument("--intakes", type=int, default=1, help="intake processes on -split paths (a port each)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument(
        "--settle",
        type=float,
        default=0.0,
        help="seconds of CPU still counted after the sink has all K (the rate is unchanged)",
    )
    p.add_argument("--timeout", type=float, default=600, help="bound on one round's drain, seconds")
    p.add_argument("--set", action="append", help="SEALMAIL_X=value for the Sealmail processes")
    p.add_argument(
        "--pg-database",
        default=throughput.PG_DB,
        help="PostgreSQL database the pg paths drop and create (give concurrent runs their own)",
    )
    p.add_argument("--output", type=Path, help="also write the markdown table here")
    p.add_argument("--profile", action="store_true", help="py-spy every Sealmail process (needs py-spy)")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, Postfix maillog)")
    args = p.parse_args()
    specs = [PathSpec.parse(x.strip()) for x in args.paths.split(",") if x.strip()]
    use_pg_database(args.pg_database)
    meta: dict[str, Any] = {"postfix": postfix_stock.ensure_installed(), "machine": machine_description()}
    m0 = machine_cpu()
    time.sleep(1)
    m1 = machine_cpu()
    meta["busy_before"] = 100 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1e-9)
    # SIGTERM runs the same cleanup as Ctrl-C: the private Postfix must not outlive the bench.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    h = Harness(keep=args.keep)
    pf: postfix_stock.PrivatePostfix | None = None
    results = []
    try:
        sink = Sink(h, pipelining=args.sink_pipelining == "on")
        pki = h.tmp / "pki"
        pf = postfix_stock.PrivatePostfix(
            h.tmp / "postfix",
            free_port(),
            f"[{SINK_IP}]:{sink.smtp_port}",
            pki / "mx.crt",
            pki / "mx.key",
            {},
        )
        pf.start()
        print(
            f"postfix {meta['postfix']} on 127.0.0.1:{pf.port}, sink {SINK_IP}:{sink.smtp_port}, "
            f"{args.client} SMTP client, sink PIPELINING {args.sink_pipelining}",
            flush=True,
        )
        for spec in specs:
            results.append(run_path(h, sink, pf, spec, args))
    except BaseException:
        if pf is not None:
            print(pf.log_tail(), file=sys.stderr)
        raise
    finally:
        if pf is not None:
            pf.stop()
        h.cleanup()
    table = render(results, args, meta)
    print("\n" + table)
    if args.output:
        cmd = " ".join(sys.argv[1:])
        when = time.strftime("%Y-%m-%d %H:%M %Z")
        args.output.write_text(f"`.venv/bin/python bench/postfix_compare.py {cmd}` — {when}\n\n{table}\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_setup":
        setup_main(int(sys.argv[2]))
    else:
        main()
