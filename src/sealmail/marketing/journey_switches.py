"""Switching a journey: pause and resume its sends, activate or retire a version.

Each is one guarded transaction, audited; ``Journeys`` (journeys.py) answers with the version
as it is afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import Conflict, NotFound, ValidationFailed
from sealmail.marketing import compliance
from sealmail.marketing.journey_runner import HELD
from sealmail.marketing.states import EnrollmentState
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.store import db

# (connection, tenant, the version's steps) -> each failing pre-send check, by step index.
Failures = Callable[[Connection, str, list[dict[str, Any]]], list[tuple[int, compliance.Failure]]]


def pause(engine: Engine, tenant_id: str, journey_id: str, actor: str) -> None:
    """Hold a journey's sends: its enrollments wait at their send steps and the claim gate
    defers its messages already queued (409 if it is paused already)."""
    with db.write(engine) as conn:
        row = journey_row(conn, tenant_id, journey_id)
        if row.paused_reason is not None:
            raise Conflict(f"journey {journey_id} is already paused ({row.paused_reason})")
        pause_journey(conn, tenant_id, journey_id, "user", actor, {})


def resume(engine: Engine, tenant_id: str, journey_id: str, actor: str, failures: Failures) -> None:
    """Let a paused journey send again once its send steps pass the pre-send checks (422
    naming each failure); held enrollments are due at once, and the complaint breaker
    counts only what is sent from now on.  409 unless paused."""
    now = datetime.now(UTC)
    with db.write(engine) as conn:
        row = journey_row(conn, tenant_id, journey_id)
        if row.paused_reason is None:
            raise Conflict(f"journey {journey_id} is not paused")
        refuse(failures(conn, tenant_id, row.definition["steps"]), f"journey {row.name!r}")
        done = conn.execute(
            sa.update(jr)
            .where(jr.c.id == journey_id, jr.c.paused_reason == row.paused_reason)
            .values(paused_reason=None, paused_at=None, resumed_at=now)
        ).rowcount
        if not done:
            raise Conflict(f"journey {journey_id} changed meanwhile; try again")
        conn.execute(
            sa.update(en)
            .where(
                en.c.journey_id == journey_id,
                en.c.state == EnrollmentState.ACTIVE,
                en.c.last_reason == HELD,
            )
            .values(due_at=now)
        )
        audit.append(
            conn,
            action=AuditAction.MKT_JOURNEY_RESUMED,
            actor=actor,
            tenant_id=tenant_id,
            target=journey_id,
            details={"was": row.paused_reason},
        )


def set_active(engine: Engine, tenant_id: str, journey_id: str, active: bool, *, actor: str) -> None:
    """Start or stop enrolling on this version.  Activating it retires the other versions
    of the same name (one version enrols at a time, as after a save); enrollments already
    made go on either way."""
    with db.write(engine) as conn:
        row = conn.execute(
            sa.select(jr.c.name).where(jr.c.tenant_id == tenant_id, jr.c.id == journey_id)
        ).first()
        if row is None:
            raise NotFound(f"no journey {journey_id!r}")
        if active:
            conn.execute(
                sa.update(jr)
                .where(jr.c.tenant_id == tenant_id, jr.c.name == row.name, jr.c.id != journey_id)
                .values(active=False)
            )
        conn.execute(sa.update(jr).where(jr.c.id == journey_id).values(active=active))
        audit.append(
            conn,
            action=AuditAction.MKT_JOURNEY_ACTIVATED if active else AuditAction.MKT_JOURNEY_DEACTIVATED,
            actor=actor,
            tenant_id=tenant_id,
            target=journey_id,
            details={"name": row.name},
        )


def pause_journey(
    conn: Connection, tenant_id: str, journey_id: str, reason: str, actor: str, details: dict[str, Any]
) -> bool:
    """Pause a journey unless it is paused already (one guarded update: two runners or
    sweepers cannot both pause it), audited with why; True if paused now."""
    done = conn.execute(
        sa.update(jr)
        .where(jr.c.id == journey_id, jr.c.tenant_id == tenant_id, jr.c.paused_reason.is_(None))
        .values(paused_reason=reason, paused_at=datetime.now(UTC))
    ).rowcount
    if done:
        audit.append(
            conn,
            action=AuditAction.MKT_JOURNEY_PAUSED,
            actor=actor,
            tenant_id=tenant_id,
            target=journey_id,
            details={"reason": reason, **details},
        )
    return bool(done)


def journey_row(conn: Connection, tenant_id: str, journey_id: str) -> Any:
    row = conn.execute(sa.select(jr).where(jr.c.tenant_id == tenant_id, jr.c.id == journey_id)).first()
    if row is None:
        raise NotFound(f"no journey {journey_id!r}")
    return row


def refuse(failures: list[tuple[int, compliance.Failure]], what: str) -> None:
    """422 naming every failed pre-send check of every send step."""
    if failures:
        raise ValidationFailed(
            [{"field": f"steps[{i}].compliance.{f.check}", "message": f.message} for i, f in failures],
            detail=f"{what} fails {len(failures)} pre-send check(s): "
            + ", ".join(sorted({f.check for _, f in failures})),
        )
