"""Bulk send of 100,000 personalized recipients: time to accept + render, and memory.

    .venv/bin/python bench/bulk.py [--recipients 100000] [--engines sqlite,postgresql]
                                   [--out bench/results/bulk-100k.md] [--tracemalloc]

Runs the bulk path itself (``BulkSender.send``: render in the Jinja2 sandbox, inline CSS,
derive the text part, compose and validate, ``Messages.accept`` with group commit, error
rows per chunk) against a real, migrated database on each engine.  Recipients come from
a generator, so the list never exists whole: if acceptance streams, RSS stays flat
whatever the count.  RSS is sampled from ``/proc/self/statm`` every 50 ms on a thread
and reported at every tenth of the run, with the growth from the first tenth to the end
per 10,000 recipients (flat means near 0 whatever ``--recipients``).  Every 1000th
recipient lacks a variable, so the error path is exercised too.  The run ends when the
job is ``completed``; the stored messages are then counted in the database, so "accepted"
means committed, not merely counted.  No delivery worker runs: this is accept + render.
``--tracemalloc`` (slow) prints the allocation sites that grew most during the run.

The HTTP endpoint takes at most 10,000 recipients per request (its parsed body is then
in memory, ~10 MB); 100,000 is ten such requests, and this measures the engine under
them.  PostgreSQL: ``SEALMAIL_BENCH_POSTGRES_URL`` (default
postgresql://postgres@127.0.0.1:5432/test); a ``sealmail_bench_bulk`` database is
created and dropped.  Results go to ``--out`` (``bench/results/bulk-100k.md``); the
machine's load average (other sessions share it) is written next to the figures.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from sealmail.app import build_services
from sealmail.config import Settings
from sealmail.crypto.vault import LocalKeyFile
from sealmail.store import db, migrate
from sealmail.store.tables import messages
from sealmail.templates.bulk import BulkSender, BulkSpec
from sealmail.templates.render import Compiled, Source
from sealmail.templates.schemas import BulkIn, BulkRecipientIn

RESULTS = Path(__file__).parent / "results" / "bulk-100k.md"
PAGE = os.sysconf("SC_PAGE_SIZE")
TEMPLATE = Source(
    subject="Your appointment on {{ when }}, {{ first_name }}",
    html="<style>p{margin:0 0 12px} .ref{color:#555}</style>"
    "<h1>Hello {{ first_name }} {{ last_name }}</h1>"
    "<p>Your appointment with {{ doctor }} is on <b>{{ when }}</b>.</p>"
    "<ul>{% for item in bring %}<li>{{ item }}</li>{% endfor %}</ul>"
    '<p class="ref">Reference {{ ref }} — <a href="https://portal.clinic.example/a/{{ ref }}">manage</a></p>',
)


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            self.samples.append((time.monotonic() - self.t0, rss()))


def recipients(n: int) -> Iterator[BulkRecipientIn]:
    for i in range(n):
        data = {
            "last_name": f"Patient{i}",
            "doctor": "Dr. Lee",
            "when": "2026-06-01 09:00",
            "bring": ["insurance card", "medication list"],
            "ref": f"A{i:06d}",
        }
        if i % 1000 != 999:
            data["first_name"] = f"Name{i}"
        yield BulkRecipientIn(to=f"patient{i}@example.net", template_data=data)


@dataclass
class Result:
    engine: str
    n: int
    seconds: float
    accepted: int
    failed: int
    stored: int
    baseline: int
    peak: int
    at_tenths: list[int]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    def growth_per_10k(self) -> float:
        """RSS growth from the first tenth of the run to its end, per 10,000 recipients."""
        return (self.at_tenths[-1] - self.at_tenths[0]) / (self.n * 0.9) * 10_000


def stored_messages(engine: sa.Engine, tenant_id: str) -> int:
    with db.reader(engine) as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(messages).where(messages.c.tenant_id == tenant_id)
        ).scalar_one()
    return int(count)


def run(engine_name: str, url: str, n: int, home: Path, trace: bool) -> Result:
    key = home / "master.key"
    LocalKeyFile.create(key)
    settings = Settings(home=home, database_url=url, log_level="warning")  # type: ignore[call-arg]  # pydantic-settings fields
    services = build_services(settings)
    migrate.upgrade(services.engine)
    tenant_id = services.tenancy.create_tenant("Bench", actor="bench")
    services.tenancy.add_domain(tenant_id, "clinic.example", actor="bench", verified=True)
    _, api_key = services.tenancy.create_api_key(tenant_id, "bench", ["send", "read"], actor="bench")
    who = services.tenancy.authenticate(api_key)
    body = BulkIn.model_validate(
        {"from": "Clinic <noreply@clinic.example>", "stream": "phi", "recipients": [{"to": "x@example.net"}]}
    )
    spec = BulkSpec(compiled=Compiled(TEMPLATE), base=body.base_message(), shared_data={})
    sender = BulkSender(
        services.engine,
        services.messages,
        message_id_domain="bench.sealmail.test",
        max_recipients=settings.max_recipients,
    )
    # Warm up (imports, first connections, template caches), then measure from a clean baseline.
    sender.send(who, spec, recipients(200))
    before = stored_messages(services.engine, tenant_id)
    gc.collect()
    if trace:
        tracemalloc.start(10)
        snap0 = tracemalloc.take_snapshot()
    baseline = rss()
    load_before = os.getloadavg()
    sampler = Sampler()
    sampler.start()
    started = time.perf_counter()
    job_id = sender.send(who, spec, recipients(n))
    seconds = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    load_after = os.getloadavg()
    if trace:
        gc.collect()
        growth = tracemalloc.take_snapshot().compare_to(snap0, "traceback")
        tracemalloc.stop()
        for stat in growth[:15]:
            print(stat)
            print("    " + "\n    ".join(stat.traceback.format()[-6:]))
    job = sender.get(tenant_id, job_id, limit=1)
    assert job["status"] == "completed", job["status"]
    stored = stored_messages(services.engine, tenant_id) - before
    samples = sampler.samples or [(0.0, baseline)]
    span = samples[-1][0] or 1.0
    tenths = [next((r for t, r in samples if t >= span * q / 10), samples[-1][1]) for q in range(1, 11)]
    services.close()
    return Result(
        engine_name,
        n,
        seconds,
        job["accepted"],
        job["failed"],
        stored,
        baseline,
        max(r for _, r in samples),
        tenths,
        load_before,
        load_after,
    )


def mb(value: int) -> str:
    return f"{value / 2**20:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--tracemalloc", action="store_true", help="print the allocation sites that grew")
    args = parser.parse_args()
    results: list[Result] = []
    for engine_name in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if engine_name == "sqlite":
                results.append(
                    run("sqlite", f"sqlite:///{home / 'bench.db'}", args.recipients, home, args.tracemalloc)
                )
                continue
            admin_url = os.environ.get(
                "SEALMAIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
            )
            admin = sa.create_engine(db.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text("DROP DATABASE IF EXISTS sealmail_bench_bulk WITH (FORCE)"))
                conn.execute(sa.text("CREATE DATABASE sealmail_bench_bulk"))
            try:
                url = admin_url.rsplit("/", 1)[0] + "/sealmail_bench_bulk"
                results.append(run("postgresql", url, args.recipients, home, args.tracemalloc))
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text("DROP DATABASE IF EXISTS sealmail_bench_bulk WITH (FORCE)"))
                admin.dispose()
        print(f"{engine_name}: done", flush=True)
    lines = [
        f"# Bulk send: {args.recipients:,} personalized recipients",
        "",
        f"`bench/bulk.py --recipients {args.recipients}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}.",
        "Render (sandboxed Jinja2, CSS inlined, text part derived) + compose + `Messages.accept`",
        "(group commit, chunks of 500, 16 accept threads); every 1000th recipient lacks a variable",
        "and is recorded as a per-recipient error.  SQLite at the default `synchronous=FULL`.",
        "No delivery: the time is from the first recipient to the job `completed`, every accepted",
        'message committed ("stored" is counted in the database afterwards).',
        "",
        "| engine | recipients | accepted | failed | stored | seconds | messages/s | RSS baseline MB "
        "| RSS peak MB | peak − baseline MB | growth 10 %→end, MB per 10k "
        "| load avg (1 min) before → after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.engine} | {r.n} | {r.accepted} | {r.failed} | {r.stored} | {r.seconds:.1f} | "
            f"{r.n / r.seconds:.0f} | {mb(r.baseline)} | {mb(r.peak)} | {mb(r.peak - r.baseline)} | "
            f"{mb(int(r.growth_per_10k()))} | {r.load_before[0]:.1f} → {r.load_after[0]:.1f} |"
        )
    lines += ["", "RSS (MB) at each tenth of the run:", ""]
    for r in results:
        lines.append(f"- {r.engine}: {' / '.join(mb(x) for x in r.at_tenths)}")
    lines += [
        "",
        "Memory is flat when RSS stops rising after the first tenth: the working set is one chunk",
        "of recipients plus the in-flight accepts, independent of the list length.",
        "",
    ]
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
