"""CPU of the delivery worker's flush alone: record outcomes + claim the next batch (issue 18).

    .venv/bin/python bench/record_cpu.py --engine postgresql --batch 20 --rounds 5
    PYTHONPATH=/tmp/head/src .venv/bin/python bench/record_cpu.py     # another tree's ``src``

Queues ``--messages`` one-recipient messages (``messages.submit``, a verified
``clinic.example``), then runs the worker's flush transaction as ``Worker._write`` does —
``queue.record_in`` of ``--batch`` delivered outcomes and ``queue.claim_with_messages_in`` of
the next ``--batch`` in one transaction — until the queue is empty; each round first makes
every recipient due again.  Printed per outcome: this process's CPU (``getrusage``, so the
client side: SQLAlchemy, psycopg or sqlite3) and, on PostgreSQL, the CPU of the backends
serving the bench database (``/proc``).  No SMTP, DKIM or event loop: the database work only,
so a change to it shows above the noise of a shared machine.  The PostgreSQL database is
``sealmail_record_bench_<pid>``, created and dropped here.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.conftest: the settings and tenant the suite uses

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from proc_cpu import cpu, pg_cpu  # noqa: E402
from tests.conftest import make_settings, make_tenant  # noqa: E402

from sealmail.app import build_services  # noqa: E402
from sealmail.domain.outcomes import Attempt, AttemptStatus, TlsInfo  # noqa: E402
from sealmail.domain.statuses import RecipientStatus  # noqa: E402
from sealmail.domain.tls_policy import VerifiedBy  # noqa: E402
from sealmail.messages import compose, queue  # noqa: E402
from sealmail.messages.schemas import MessageIn  # noqa: E402
from sealmail.store import db, migrate  # noqa: E402
from sealmail.store.events import EventType  # noqa: E402
from sealmail.store.tables import recipients  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = f"sealmail_record_bench_{os.getpid()}"
TLS = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", True, VerifiedBy.PKIX, "ab" * 32)


def delivered(claimed: list[queue.Claimed]) -> list[queue.RecordedOutcome]:
    now = datetime.now(UTC)
    return [
        queue.RecordedOutcome(
            c,
            Attempt(
                c.address,
                AttemptStatus.DELIVERED,
                "delivered",
                "250 2.0.0 ok",
                250,
                "2.0.0",
                "250 2.0.0 ok",
                "mx1.example.net",
                "127.0.0.2",
                TLS,
                sent_sha256="cd" * 32,
            ),
            now,
            now,
            RecipientStatus.DELIVERED,
            EventType.DELIVERED,
            method="tls",
            method_reason="policy",
        )
        for c in claimed
    ]


def one_round(
    engine: sa.Engine, batch: int, counts: collections.Counter[str]
) -> tuple[int, int, float, float]:
    """(outcomes, flushes, client CPU s, backend CPU s) of draining the queue once."""
    with engine.begin() as conn:
        due = datetime.now(UTC) - timedelta(seconds=5)
        conn.execute(
            sa.update(recipients).values(
                status="queued", lease_owner=None, lease_until=None, next_attempt_at=due
            )
        )
    claimed, _ = queue.claim_with_messages(engine, "bench", batch, 300)
    counts.clear()
    done = flushes = 0
    c0, b0 = cpu(), pg_cpu(PG_DB)
    while claimed:
        with engine.begin() as conn:
            queue.record_in(conn, "bench", delivered(claimed))
            done += len(claimed)
            claimed, _ = queue.claim_with_messages_in(conn, "bench", batch, 300)
        flushes += 1
    return done, flushes, cpu() - c0, pg_cpu(PG_DB) - b0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", choices=("sqlite", "postgresql"), default="postgresql")
    p.add_argument("--messages", type=int, default=600)
    p.add_argument(
        "--batch", type=int, default=20, help="outcomes a flush records (and recipients it claims)"
    )
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="sealmail-record-"))
    if args.engine == "postgresql":
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {PG_DB}")
        url = f"postgresql://postgres@127.0.0.1:5432/{PG_DB}"
    else:
        url = f"sqlite:///{home}/sealmail.db"
    try:
        engine = db.create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        svc = build_services(make_settings(home, url, sqlite_synchronous="FULL"))
        tenant = make_tenant(svc)
        body: dict[str, Any] = {
            "from": "Clinic <noreply@clinic.example>",
            "subject": "Results",
            "stream": "phi",
        }
        for i in range(args.messages):
            msg = MessageIn.model_validate(
                {**body, "text": "hello " * 800, "to": [f"p{i % 100}@example.net"]}
            )
            svc.messages.submit(tenant.principal, compose.from_message(msg, "sealmail.test", 1000))
        counts: collections.Counter[str] = collections.Counter()
        sa.event.listen(
            svc.engine, "before_cursor_execute", lambda *a, **_: counts.update([" ".join(a[2].split()[:3])])
        )
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            done, flushes, client, backend = one_round(svc.engine, args.batch, counts)
            print(
                f"{args.engine} batch {args.batch}: {done} outcomes, {flushes} flushes: client "
                f"{1000 * client / done:.3f} ms/outcome, PG {1000 * backend / done:.3f} ms/outcome, "
                f"{1000 * (time.perf_counter() - t0) / flushes:.1f} ms/flush wall",
                flush=True,
            )
        # COPY goes to the driver directly: SQLAlchemy's statement events do not see it.
        print("statements a flush (COPY not seen):", {k: round(v / flushes, 2) for k, v in counts.items()})
        svc.close()
    finally:
        if args.engine == "postgresql":
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
