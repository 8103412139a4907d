"""What moves journeys from outside: enrolling on a trigger, waking a wait-until, a webhook.

Everything here runs inside the caller's transaction, so a trigger and its enrollment (a
form's consent grant and the journeys that form starts, an API event and the waits it
ends) are stored together or not at all.

* ``enroll``: once per (journey, contact, trigger key), the unique constraint's promise.
* ``wake``: a wait-until step leaves its enrollment with ``awaiting = "{contact}:{event}"``
  (indexed); an event ends those waits by that key alone, one indexed ``UPDATE``, never a
  scan of enrollments.  A wait whose deadline passed first is being run by a runner (it
  holds the lease) and is left to time out.
* ``emit_webhooks``: a webhook step writes a ``journey.webhook`` event, the outbox the
  webhooks feature fans out to each endpoint subscribed to it, signed (Standard Webhooks)
  and sent through the SSRF-safe client with its retries.  The event's ``message_id``
  holds the enrollment id; its data names the journey, step and contact by id only.
* ``form_submitted``: a consenting form submission (``FormConsent``) enrols the contact in
  the journeys triggered by that form and wakes its waits for ``form:{form id}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.ids import new_id
from sealmail.marketing.states import EnrollmentState
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.store import events as event_store
from sealmail.store.events import EventType

TRIGGER_FIELD = {"api_event": "event", "list_join": "list", "form_submission": "form"}


def awaiting_key(contact_id: str, event: str) -> str:
    return f"{contact_id}:{event}"[:160]


def active(conn: Connection, tenant_id: str, trigger: str, match: str) -> list[str]:
    """The active journeys of a tenant whose trigger is ``trigger`` on ``match``."""
    rows = conn.execute(
        sa.select(jr.c.id, jr.c.definition).where(jr.c.tenant_id == tenant_id, jr.c.active.is_(True))
    ).all()
    field = TRIGGER_FIELD.get(trigger, "attr")
    return [
        r.id
        for r in rows
        if r.definition["trigger"]["type"] == trigger and r.definition["trigger"].get(field) == match
    ]


def enroll(
    conn: Connection, tenant_id: str, journey_ids: list[str], contact_ids: list[str], key: str, actor: str
) -> int:
    """Enrol each contact in each journey once per trigger key; how many were new."""
    now = datetime.now(UTC)
    done = 0
    for jid in journey_ids:
        for cid in contact_ids:
            exists = conn.execute(
                sa.select(en.c.id).where(
                    en.c.journey_id == jid, en.c.contact_id == cid, en.c.trigger_key == key
                )
            ).first()
            if exists is not None:
                continue  # idempotent per (journey, contact, trigger)
            eid = new_id("enr")
            conn.execute(
                sa.insert(en).values(
                    id=eid,
                    tenant_id=tenant_id,
                    journey_id=jid,
                    contact_id=cid,
                    trigger_key=key[:100],
                    step=0,
                    state=EnrollmentState.ACTIVE,
                    due_at=now,
                    steps_run=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            audit.append(
                conn,
                action=AuditAction.MKT_ENROLLED,
                actor=actor,
                tenant_id=tenant_id,
                target=eid,
                details={"journey": jid, "contact": cid},
            )
            done += 1
    return done


def wake(conn: Connection, tenant_id: str, contact_id: str, event: str) -> int:
    """End every wait-until of this contact for ``event``: on to the step after it, now."""
    now = datetime.now(UTC)
    return int(
        conn.execute(
            sa.update(en)
            .where(
                # Only an active enrollment has ``awaiting`` set (every other move clears it),
                # so the key alone selects, through its index.
                en.c.awaiting == awaiting_key(contact_id, event),
                en.c.tenant_id == tenant_id,
                sa.or_(en.c.lease_until.is_(None), en.c.lease_until < now),
            )
            .values(
                awaiting=None,
                step=en.c.step + 1,
                due_at=now,
                last_reason="event",
                updated_at=now,
                steps_run=en.c.steps_run + 1,
            )
        ).rowcount
        or 0
    )


def emit_webhooks(
    conn: Connection, tenant_id: str, enrollments: list[Any], step: int, body: dict[str, Any]
) -> list[dict[str, Any]]:
    """The ``journey.webhook`` events of a step for a batch of enrollments at it: one
    multi-row insert, in the step's transaction."""
    rows = [_webhook_row(tenant_id, e, step, body) for e in enrollments]
    event_store.insert(conn, rows)
    return rows


def _webhook_row(tenant_id: str, enrollment: Any, step: int, body: dict[str, Any]) -> dict[str, Any]:
    data = {
        "journey_id": enrollment.journey_id,
        "enrollment_id": enrollment.id,
        "contact_id": enrollment.contact_id,
        "step": step,
        "label": str(body.get("label", ""))[:100],
    }
    return {
        "id": new_id("evt"),
        "tenant_id": tenant_id,
        "message_id": enrollment.id,
        "recipient_id": None,
        "recipient": None,
        "type": str(EventType.JOURNEY_WEBHOOK),
        "seq": step + 1,
        "created_at": datetime.now(UTC),
        "data": data,
    }


def form_submitted(conn: Connection, tenant_id: str, contact_id: str, form_id: str, actor: str) -> int:
    """A consenting submission of ``form_id``: enrol in its journeys, wake its waits."""
    journeys = active(conn, tenant_id, "form_submission", form_id)
    enrolled = enroll(conn, tenant_id, journeys, [contact_id], f"form:{form_id}", actor)
    wake(conn, tenant_id, contact_id, f"form:{form_id}")
    return enrolled
