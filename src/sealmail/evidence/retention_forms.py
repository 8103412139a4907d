"""Retention of secure form submissions: the tenant's content period, crypto-shredded.

A submission's answers and files are sealed under a data key of their own (like a
message's), so when the tenant's content period has passed the wrapped key and the sealed
bytes are overwritten with nothing: no key that opens a backup copy is left.  The row
keeps its ids, times, sizes and digest (the receipt's proof still verifies against what
the recipients were sent).  A submission is kept while an active legal hold covers its
tenant, the submission itself (scope ``message``, target the submission id) or the
secure message that delivered it; one not yet delivered or delivered-pending is kept too.
Each shredded submission is recorded in ``retention_purges`` (kind ``form``) and audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.evidence.tables import legal_holds, retention_purges
from sealmail.forms.states import SETTLED
from sealmail.forms.tables import form_submissions as fs

KIND = "form"
BATCH = 500


def held(tenant_id: str) -> sa.ColumnElement[bool]:
    """True for a submission of ``tenant_id`` that an active legal hold covers."""
    active = sa.and_(legal_holds.c.tenant_id == tenant_id, legal_holds.c.released_at.is_(None))
    return sa.or_(
        sa.exists().where(active, legal_holds.c.scope == "tenant"),
        sa.exists().where(
            active,
            legal_holds.c.scope == "message",
            sa.or_(legal_holds.c.target == fs.c.id, legal_holds.c.target == fs.c.message_id),
        ),
    )


def _eligible(conn: Connection, tenant_id: str, cutoff: datetime) -> list[str]:
    query = (
        sa.select(fs.c.id)
        .where(
            fs.c.tenant_id == tenant_id,
            fs.c.received_at < cutoff,
            fs.c.status.in_(SETTLED),
            sa.func.length(fs.c.wrapped_key) > 0,
            ~held(tenant_id),
        )
        .order_by(fs.c.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=fs)
    )
    return list(conn.execute(query).scalars())


def purge(engine: Engine, tenant_id: str, days: int, now: datetime, actor: str) -> int:
    """Shred the sealed content of submissions older than ``days``; how many were shredded."""
    cutoff = now - timedelta(days=days)
    total = 0
    while True:
        with engine.begin() as conn:
            ids = _eligible(conn, tenant_id, cutoff)
            if not ids:
                return total
            conn.execute(
                sa.update(fs)
                .where(fs.c.tenant_id == tenant_id, fs.c.id.in_(ids))
                .values(wrapped_key=b"", content=b"")
            )
            conn.execute(
                sa.insert(retention_purges),
                [
                    {
                        "message_id": s,
                        "kind": KIND,
                        "tenant_id": tenant_id,
                        "purged_at": now,
                        "policy_days": days,
                    }
                    for s in ids
                ],
            )
            audit.append_many(
                conn,
                [
                    audit.Entry(
                        AuditAction.RETENTION_PURGED, actor, tenant_id, s, {"kind": KIND, "days": days}
                    )
                    for s in ids
                ],
            )
        total += len(ids)


def held_past(conn: Connection, tenant_id: str, cutoff: datetime) -> int:
    """Submissions past the content period that a legal hold keeps."""
    return int(
        conn.execute(
            sa.select(sa.func.count()).where(
                fs.c.tenant_id == tenant_id,
                fs.c.received_at < cutoff,
                sa.func.length(fs.c.wrapped_key) > 0,
                held(tenant_id),
            )
        ).scalar_one()
    )


def exists(conn: Connection, tenant_id: str, submission_id: str) -> bool:
    found = conn.execute(sa.select(fs.c.id).where(fs.c.id == submission_id, fs.c.tenant_id == tenant_id))
    return found.first() is not None
