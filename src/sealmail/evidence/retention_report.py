"""The retention report: the policy in force, every legal hold, and what retention did.

One table of (section, item, value, at) rows, CSV or PDF: an auditor sees the periods, that
none is below six years for audit and compliance records, each hold with its reason, how
much content was crypto-shredded (by retention or by the portal's lifecycle), how much is
kept by holds past its period, and how old the audit log is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail.evidence.retention import FLOOR_DAYS, Retention, held_clause
from sealmail.evidence.tables import retention_policies, retention_purges
from sealmail.store import db
from sealmail.store.tables import audit_log, messages

HEADER = ("section", "item", "value", "at")


def retention_rows(engine: Engine, tenant_id: str, now: datetime | None = None) -> list[tuple[str, ...]]:
    now = now or datetime.now(UTC)
    retention = Retention(engine)
    policy = retention.policy(tenant_id)
    rows: list[tuple[str, ...]] = []
    with db.reader(engine) as conn:
        set_at = conn.execute(
            sa.select(retention_policies.c.updated_at, retention_policies.c.updated_by).where(
                retention_policies.c.tenant_id == tenant_id
            )
        ).first()
        when = set_at.updated_at.isoformat(timespec="seconds") if set_at else "default"
        for name in ("content_days", "metadata_days", "audit_days"):
            rows.append(("policy", name, str(getattr(policy, name)), when))
        rows.append(("policy", "floor_days", str(FLOOR_DAYS), "45 CFR 164.316(b)(2), 164.530(j)"))
        rows.extend(_counts(conn, tenant_id, now, policy.content_days))
        rows.extend(_audit(conn, tenant_id, now, policy.audit_days))
    for hold in retention.holds(tenant_id):
        released = hold.released_at.isoformat() if hold.released_at else None
        state = "active" if hold.active else f"released {released} by {hold.released_by}"
        rows.append(
            (
                "legal_hold",
                hold.id,
                f"{hold.scope} {hold.target}: {hold.reason} ({state}; by {hold.created_by})",
                hold.created_at.isoformat(),
            )
        )
    return rows


def _counts(conn: sa.Connection, tenant_id: str, now: datetime, content_days: int) -> list[tuple[str, ...]]:
    mine = messages.c.tenant_id == tenant_id
    total = conn.execute(sa.select(sa.func.count()).where(mine)).scalar_one()
    readable = conn.execute(
        sa.select(sa.func.count()).where(mine, messages.c.wrapped_data_key.is_not(None))
    ).scalar_one()
    by_kind: dict[str, int] = dict(
        conn.execute(
            sa.select(retention_purges.c.kind, sa.func.count())
            .where(retention_purges.c.tenant_id == tenant_id)
            .group_by(retention_purges.c.kind)
        ).all()
    )
    cutoff = now - timedelta(days=content_days)
    held = conn.execute(
        sa.select(sa.func.count()).where(
            mine,
            messages.c.created_at < cutoff,
            messages.c.wrapped_data_key.is_not(None),
            held_clause(tenant_id),
        )
    ).scalar_one()
    by_retention = int(by_kind.get("content", 0))
    stamp = now.isoformat(timespec="seconds")
    return [
        ("content", "messages", str(total), stamp),
        ("content", "readable", str(readable), stamp),
        ("content", "shredded_by_retention", str(by_retention), stamp),
        ("content", "shredded_otherwise", str(total - readable - by_retention), stamp),
        ("content", "held_past_period", str(held), stamp),
        ("metadata", "pseudonymised", str(int(by_kind.get("metadata", 0))), stamp),
        # Secure form submissions shredded by ``retention_forms`` (kind ``form``).
        ("content", "form_submissions_shredded", str(int(by_kind.get("form", 0))), stamp),
    ]


def _audit(conn: sa.Connection, tenant_id: str, now: datetime, audit_days: int) -> list[tuple[str, ...]]:
    mine = audit_log.c.tenant_id == tenant_id
    count, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(audit_log.c.at)).where(mine)).one()
    past = conn.execute(
        sa.select(sa.func.count()).where(mine, audit_log.c.at < now - timedelta(days=audit_days))
    ).scalar_one()
    stamp = now.isoformat(timespec="seconds")
    return [
        ("audit", "entries", str(count), stamp),
        ("audit", "oldest", oldest.isoformat(timespec="seconds") if oldest else "", stamp),
        # Never deleted by Sealmail: the hash chain and its anchors vouch for every entry.
        ("audit", "past_period_kept", str(past), stamp),
    ]
