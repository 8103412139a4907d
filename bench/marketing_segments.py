"""Marketing at 100,000 contacts: CSV-style import rate and segment count latency.

    .venv/bin/python bench/marketing_segments.py [--contacts 100000] [--engines sqlite,postgresql]
                                                 [--repeat 20] [--out bench/results/marketing-100k.md]

Imports ``--contacts`` generated contacts through the real importer (validation, upsert
by email, chunks of 1000, one in 50 with a sealed sensitive value), grants fundraising
consent to one in four, then counts a segment shaped like research/marketing.md §4's
(five cities IN, an age range, a plan, consent EXISTS, NOT on a list) ``--repeat`` times
through ``Segments.evaluate`` (compile, count, audit entry).  Reports rows/s and the
count's p50 / p95 / max wall time and the client process's CPU time per count (the
machine is shared: wall time is noisy).  PostgreSQL: ``SEALMAIL_BENCH_POSTGRES_URL``
(default postgresql://postgres@127.0.0.1:5432/test); ``sealmail_bench_mkt`` is created
and dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from sealmail.app import build_services
from sealmail.config import Settings
from sealmail.crypto.vault import LocalKeyFile
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.contacts import ContactData
from sealmail.marketing.tables import mkt_consent_current, mkt_consent_events
from sealmail.store import db, migrate

RESULTS = Path(__file__).parent / "results" / "marketing-100k.md"
CITIES = [
    "Austin",
    "Boston",
    "Denver",
    "Chicago",
    "Seattle",
    "Miami",
    "Phoenix",
    "Portland",
    "Dallas",
    "Tampa",
]
PLANS = ["gold", "silver", "bronze"]
RULE = {
    "all": [
        {"attr": "city", "op": "in", "value": CITIES[:5]},
        {"attr": "age", "op": "between", "value": [40, 65]},
        {"attr": "plan", "op": "eq", "value": "gold"},
        {"consent": "fundraising", "state": "granted"},
        {"not": {"list": "do-not-mail"}},
    ]
}


def rows(n: int) -> Iterator[tuple[int, ContactData]]:
    for i in range(n):
        attrs: dict[str, object] = {"city": CITIES[i % 10], "age": 18 + (i * 7) % 70, "plan": PLANS[i % 3]}
        if i % 50 == 0:
            attrs["hiv_status"] = "negative"
        yield i + 2, ContactData(f"patient{i}@example.net", None, "America/Chicago", None, attrs)


def run(engine_name: str, url: str, n: int, repeat: int, home: Path) -> dict[str, float]:
    LocalKeyFile.create(home / "master.key")
    settings = Settings(home=home, database_url=url, log_level="warning")  # type: ignore[call-arg]  # pydantic-settings fields
    services = build_services(settings)
    migrate.upgrade(services.engine)
    tenant = services.tenancy.create_tenant("Bench", actor="bench")
    mk = services.marketing
    for name, type_, phi, choices in (
        ("city", "text", "demographic", None),
        ("age", "number", "demographic", None),
        ("plan", "choice", "none", PLANS),
        ("hiv_status", "choice", "sensitive", ["positive", "negative"]),
    ):
        mk.attributes.define(tenant, name=name, type_=type_, phi_class=phi, choices=choices, actor="bench")
    mk.lists.create(tenant, "do-not-mail", "bench")
    started = time.perf_counter()
    report = mk.importer.run(tenant, rows(n), actor="bench")
    import_seconds = time.perf_counter() - started
    assert report["created"] == n, report
    # Consent in bulk (the ledger's own path is one audited event per change).
    now = datetime.now(UTC)
    with services.engine.begin() as conn:
        # One in four by the number in the address, so both engines hold the same data.
        ids = [
            r.id
            for r in conn.execute(sa.text("SELECT id, email FROM mkt_contacts"))
            if int(r.email[7:].split("@")[0]) % 4 == 0
        ]
        scope = {"tenant_id": tenant, "purpose": "fundraising", "channel": "email"}
        events = [
            {
                "id": f"cev_b{i}",
                "contact_id": c,
                "action": "grant",
                "source": "import",
                "actor": "bench",
                "at": now,
            }
            for i, c in enumerate(ids)
        ]
        conn.execute(sa.insert(mkt_consent_events), [{**scope, **e} for e in events])
        current = [{"contact_id": e["contact_id"], "event_id": e["id"], "state": "granted"} for e in events]
        conn.execute(sa.insert(mkt_consent_current), [{**scope, **c, "updated_at": now} for c in current])
    walls, cpus, count = [], [], 0
    mk.segments.evaluate(tenant, rule=RULE, actor="bench", allowed=ALL_CLASSES, sample=0)  # warm-up
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        count = mk.segments.evaluate(tenant, rule=RULE, actor="bench", allowed=ALL_CLASSES, sample=0)["count"]
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    services.close()
    walls.sort()
    return {
        "import_rows_s": n / import_seconds,
        "count": count,
        "p50": statistics.median(walls),
        "p95": walls[max(0, int(len(walls) * 0.95) - 1)],
        "max": walls[-1],
        "cpu": statistics.median(cpus),
        "load": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for engine_name in args.engines.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            if engine_name == "sqlite":
                results["sqlite"] = run(
                    "sqlite", f"sqlite:///{home / 'bench.db'}", args.contacts, args.repeat, home
                )
                continue
            admin_url = os.environ.get(
                "SEALMAIL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
            )
            admin = sa.create_engine(db.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text("DROP DATABASE IF EXISTS sealmail_bench_mkt WITH (FORCE)"))
                conn.execute(sa.text("CREATE DATABASE sealmail_bench_mkt"))
            try:
                url = admin_url.rsplit("/", 1)[0] + "/sealmail_bench_mkt"
                results["postgresql"] = run("postgresql", url, args.contacts, args.repeat, home)
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text("DROP DATABASE IF EXISTS sealmail_bench_mkt WITH (FORCE)"))
                admin.dispose()
        print(f"{engine_name}: done", flush=True)
    lines = [
        f"# Marketing: {args.contacts:,} contacts",
        "",
        f"`bench/marketing_segments.py --contacts {args.contacts}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs (shared with other sessions).",
        "Import: the real importer (validation, upsert by email, 1000-row chunks, 1 in 50 sealed).",
        "Count: five cities IN, age between, plan eq, fundraising consent EXISTS, NOT on a list;",
        f"{args.repeat} runs through `Segments.evaluate` (compile, count, audit entry).",
        "",
        "| engine | import rows/s | matches | count p50 ms | count p95 ms | max ms | client CPU ms "
        "| load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['import_rows_s']:,.0f} | {r['count']:.0f} | {r['p50'] * 1000:.0f} | "
            f"{r['p95'] * 1000:.0f} | {r['max'] * 1000:.0f} | {r['cpu'] * 1000:.1f} | {r['load']:.1f} |"
        )
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
