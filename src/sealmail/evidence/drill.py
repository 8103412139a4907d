"""The restore drill (164.308(a)(7)(ii)(B), (D)): back up, restore into a scratch database, time it.

``sealmail backup drill`` makes a fresh backup of the live database, restores it into a
scratch database (a temporary SQLite file unless ``--scratch-url`` names an empty one, e.g. a
PostgreSQL database kept for drills), re-verifies the audit chain there and reports:

- the **recovery point**: the time of the last committed audit entry in the backup, and how
  far it lies behind the moment the backup finished;
- the **recovery time**: seconds from opening the backup to a verified, restored database.

The report is recorded in the live audit log (``backup:drill``), so the evidence pack lists
every drill of its period.  The scratch database is emptied afterwards: a drill leaves no
copy of the data behind.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.evidence import backup, restore
from sealmail.store import append_only, db
from sealmail.store.tables import audit_log

FORMAT = "sealmail-backup-drill/1"


@dataclass(frozen=True, slots=True)
class DrillReport:
    format: str
    ran_at: str
    source_engine: str
    scratch_engine: str
    backup_bytes: int
    backup_sha256: str
    backup_seconds: float
    recovery_point: str | None
    recovery_point_age_seconds: float | None
    recovery_time_seconds: float
    rows: int
    blobs: int
    audit_entries_verified: int
    audit_head_matches: bool
    ok: bool
    problem: str


def _empty(engine: Engine, tables: Sequence[sa.Table]) -> None:
    present = set(sa.inspect(engine).get_table_names())
    # The scratch copy is wiped whole, the consent ledger with it: its append-only guard is
    # lifted for this one transaction.
    with engine.begin() as conn, append_only.lifted(conn, present):
        for table in reversed(tables):
            if table.name in present:
                conn.execute(sa.delete(table))


def run(
    engine: Engine,
    tables: Sequence[sa.Table],
    blob_root: Path | None,
    scratch_url: str | None = None,
    actor: str = "cli",
) -> DrillReport:
    """Back up, restore into scratch, verify, report; the report is audited in ``engine``."""
    with tempfile.TemporaryDirectory(prefix="sealmail-drill-") as work:
        folder = Path(work)
        started = time.monotonic()
        made = backup.create(engine, tables, folder / "drill.zip", blob_root)
        backup_seconds = time.monotonic() - started
        scratch = db.create_engine(scratch_url or f"sqlite:///{folder / 'scratch.db'}", pool_size=2)
        try:
            started = time.monotonic()
            result = restore.restore(scratch, tables, made.path, folder / "blobs" if made.blobs else None)
            rto = time.monotonic() - started
            scratch_engine = scratch.dialect.name
            if scratch_url is not None:
                _empty(scratch, tables)
        finally:
            scratch.dispose()
        size = made.path.stat().st_size
    age = None
    if made.recovery_point is not None:
        finished = datetime.fromisoformat(made.created_at)
        age = max(0.0, round((finished - datetime.fromisoformat(made.recovery_point)).total_seconds(), 3))
    report = DrillReport(
        format=FORMAT,
        ran_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source_engine=made.engine,
        scratch_engine=scratch_engine,
        backup_bytes=size,
        backup_sha256=made.sha256,
        backup_seconds=round(backup_seconds, 3),
        recovery_point=made.recovery_point,
        recovery_point_age_seconds=age,
        recovery_time_seconds=round(rto, 3),
        rows=result.rows,
        blobs=result.blobs,
        audit_entries_verified=result.audit_entries,
        audit_head_matches=result.head_matches,
        ok=result.ok and result.rows == sum(made.tables.values()),
        problem=result.problem,
    )
    with engine.begin() as conn:
        audit.append(conn, action=AuditAction.BACKUP_DRILL, actor=actor, details=asdict(report))
    return report


def record_failure(engine: Engine, problem: str, actor: str) -> DrillReport:
    """A drill that could not finish (no space for the backup, the scratch database refused…):
    recorded like any drill, with ``ok`` false and the problem, so the register shows it."""
    report = DrillReport(
        format=FORMAT,
        ran_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source_engine=engine.dialect.name,
        scratch_engine="",
        backup_bytes=0,
        backup_sha256="",
        backup_seconds=0.0,
        recovery_point=None,
        recovery_point_age_seconds=None,
        recovery_time_seconds=0.0,
        rows=0,
        blobs=0,
        audit_entries_verified=0,
        audit_head_matches=False,
        ok=False,
        problem=problem[:500],
    )
    with engine.begin() as conn:
        audit.append(conn, action=AuditAction.BACKUP_DRILL, actor=actor, details=asdict(report))
    return report


def drills(engine: Engine, since: datetime, until: datetime) -> list[dict[str, object]]:
    """The drill reports recorded in [since, until), oldest first (for the evidence pack)."""
    query = (
        sa.select(audit_log.c.seq, audit_log.c.details)
        .where(
            audit_log.c.action == str(AuditAction.BACKUP_DRILL),
            audit_log.c.at >= since,
            audit_log.c.at < until,
        )
        .order_by(audit_log.c.seq)
    )
    with db.reader(engine) as conn:
        return [{"audit_seq": int(r.seq), **dict(r.details)} for r in conn.execute(query)]
