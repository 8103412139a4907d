"""Journeys: versioned step lists run as claimed state machines, idempotent per contact.

A journey is a trigger and a list of steps::

    {"trigger": {"type": "api_event", "event": "appointment_booked"}
              | {"type": "list_join", "list": "new-patients"}
              | {"type": "date_attribute", "attr": "recall_due", "days_before": 7}
              | {"type": "form_submission", "form": "<form id>"},
     "steps": [{"send": {"template": "welcome", "purpose": "treatment", "from": "…"}},
               {"wait": {"hours": 24}},
               {"wait_until": {"event": "appointment_booked", "hours": 72,
                               "timeout": "exit" | step index}},
               {"condition": {"rule": <segment rule>, "else": "exit" | step index}},
               {"add_to_list": "engaged"},
               {"update_attribute": {"name": "stage", "value": "welcomed"}},
               {"webhook": {"label": "crm-sync"}},
               {"exit": {}}]}

A form submission triggers only when its consent box was ticked (``FormConsent``).  A
``wait_until`` ends when the event arrives for the contact (``POST …/journeys/events``, or
``form:<form id>`` for a consenting form submission) — the event finds the waiting
enrollments by an indexed key, never by a scan — or at its timeout, which exits or jumps
forward.  A ``webhook`` step writes a ``journey.webhook`` event that the webhooks feature
delivers, signed, to the endpoints subscribed to it (``journey_events``).

Saving a definition makes a new immutable version; enrollments keep the version they
started on.  A contact is enrolled once per (journey, trigger key): the unique constraint
makes a repeated trigger a no-op.  Runners claim due enrollments like queue rows (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL, one ``UPDATE … RETURNING`` under SQLite's write lock),
and ``journey_runner`` advances a claimed batch in rounds, each step's effects committed
with its enrollment's pointer; a send step goes into the queue with an idempotency key of
(enrollment, step), so a runner that dies after queueing does not send twice.  Jumps go
forward only and a run stops after ``journey_runner.MAX_STEPS_PER_RUN`` steps: a journey
cannot loop.  Sends pass the claim gate like a campaign's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.marketing import PhiClass, Purpose
from sealmail.errors import NotFound, SealmailError
from sealmail.ids import new_id
from sealmail.marketing import attributes as attrs
from sealmail.marketing import compliance
from sealmail.marketing import journey_events as ev
from sealmail.marketing import segments as seg
from sealmail.marketing.campaigns import Campaigns, Outgoing, Snapshot, record_send
from sealmail.marketing.journey_defs import bad, validate
from sealmail.marketing.journey_runner import Claimed, Runner
from sealmail.marketing.states import EnrollmentState
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.marketing.tables import mkt_sends
from sealmail.messages.submission import Idempotency
from sealmail.store import db
from sealmail.templates.render import Compiled
from sealmail.tenancy.service import Principal

LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    enrolled: int  # new enrollments in journeys this event triggers
    woken: int  # wait-until steps this event ended


class Journeys:
    def __init__(self, engine: Engine, campaigns: Campaigns, segments: seg.Segments) -> None:
        self.engine = engine
        self.campaigns = campaigns
        self.segments = segments
        self.runner = Runner(engine, segments, self._send)

    # -- definitions ---------------------------------------------------------------------------
    def save(
        self,
        tenant_id: str,
        name: str,
        definition: dict[str, Any],
        *,
        actor: str,
        allowed: frozenset[PhiClass],
    ) -> dict[str, Any]:
        with db.write(self.engine) as conn:
            validate(definition, attrs.load(conn, tenant_id))
            for i, step in enumerate(definition["steps"]):
                if "condition" in step:
                    compiled = self.segments.compile(conn, tenant_id, step["condition"].get("rule"))
                    seg.check_classes(compiled.classes, allowed)
                if "send" in step:
                    try:
                        self.campaigns.templates.source(tenant_id, step["send"]["template"])
                    except NotFound as exc:
                        raise bad(f"steps[{i}].send.template", exc.detail) from exc
            version = (
                conn.execute(
                    sa.select(sa.func.max(jr.c.version)).where(jr.c.tenant_id == tenant_id, jr.c.name == name)
                ).scalar()
                or 0
            ) + 1
            conn.execute(
                sa.update(jr).where(jr.c.tenant_id == tenant_id, jr.c.name == name).values(active=False)
            )
            jid = new_id("jny")
            conn.execute(
                sa.insert(jr).values(
                    id=jid,
                    tenant_id=tenant_id,
                    name=name,
                    version=version,
                    definition=definition,
                    active=True,
                    created_by=actor[:80],
                    created_at=datetime.now(UTC),
                )
            )
            audit.append(
                conn,
                action=AuditAction.MKT_JOURNEY_SAVED,
                actor=actor,
                tenant_id=tenant_id,
                target=jid,
                details={"name": name, "version": version},
            )
        return {"id": jid, "name": name, "version": version, "active": True}

    def all(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._rows(tenant_id, sa.true())

    def _rows(self, tenant_id: str, where: Any) -> list[dict[str, Any]]:
        counts = sa.select(sa.func.count()).where(en.c.journey_id == jr.c.id).scalar_subquery()
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(jr, counts.label("enrolled"))
                .where(jr.c.tenant_id == tenant_id, where)
                .order_by(jr.c.name, jr.c.version)
            ).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "version": r.version,
                "active": r.active,
                "enrolled": r.enrolled,
                "definition": r.definition,
            }
            for r in rows
        ]

    def get(self, tenant_id: str, journey_id: str) -> dict[str, Any]:
        """One version with its definition (404 for another tenant's)."""
        found = self._rows(tenant_id, jr.c.id == journey_id)
        if not found:
            raise NotFound(f"no journey {journey_id!r}")
        return found[0]

    def set_active(self, tenant_id: str, journey_id: str, active: bool, *, actor: str) -> dict[str, Any]:
        """Start or stop enrolling on this version.  Activating it retires the other versions
        of the same name (one version enrols at a time, as after a save); enrollments already
        made go on either way."""
        with db.write(self.engine) as conn:
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
        return self.get(tenant_id, journey_id)

    # -- triggers ------------------------------------------------------------------------------
    def event(self, tenant_id: str, event: str, email: str, key: str | None, *, actor: str) -> EventOutcome:
        """An API event for a contact: enrol it in every active journey it triggers, and end
        its wait-until steps waiting for this event (found by index, not by scan)."""
        with db.write(self.engine) as conn:
            cid = conn.execute(
                sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.email == email.strip().lower())
            ).scalar()
            if cid is None:
                raise NotFound("no contact with that email")
            enrolled = ev.enroll(
                conn,
                tenant_id,
                ev.active(conn, tenant_id, "api_event", event),
                [cid],
                f"event:{event}:{key or ''}",
                actor,
            )
            return EventOutcome(enrolled, ev.wake(conn, tenant_id, cid, event))

    def list_joined(self, tenant_id: str, name: str, contact_ids: list[str], *, actor: str) -> int:
        with db.write(self.engine) as conn:
            return ev.enroll(
                conn,
                tenant_id,
                ev.active(conn, tenant_id, "list_join", name),
                contact_ids,
                f"list:{name}",
                actor,
            )

    def enroll_dates_everywhere(self, now: datetime | None = None) -> int:
        """``enroll_dates`` for every tenant with an active journey (the worker's sweep)."""
        with db.reader(self.engine) as conn:
            tenants = sorted(
                set(conn.execute(sa.select(jr.c.tenant_id).where(jr.c.active.is_(True))).scalars())
            )
        return sum(self.enroll_dates(t, now) for t in tenants)

    def enroll_dates(self, tenant_id: str, now: datetime | None = None) -> int:
        """Date triggers (a birthday, a recall due): contacts whose date is ``days_before`` away."""
        today = (now or datetime.now(UTC)).date()
        total = 0
        with db.write(self.engine) as conn:
            rows = conn.execute(
                sa.select(jr.c.id, jr.c.definition).where(jr.c.tenant_id == tenant_id, jr.c.active.is_(True))
            ).all()
            for r in rows:
                trig = r.definition["trigger"]
                if trig["type"] != "date_attribute":
                    continue
                day = (today + timedelta(days=int(trig.get("days_before", 0)))).isoformat()
                ids = [
                    c
                    for (c,) in conn.execute(
                        sa.select(ct.c.id).where(
                            ct.c.tenant_id == tenant_id, ct.c.attrs[trig["attr"]].as_string() == day
                        )
                    )
                ]
                total += ev.enroll(conn, tenant_id, [r.id], ids, f"date:{trig['attr']}:{day}", "system")
        return total

    # -- running -------------------------------------------------------------------------------
    def claim(self, worker: str, limit: int = 500) -> list[Claimed]:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            due = (
                sa.select(en.c.id)
                .where(
                    en.c.state == EnrollmentState.ACTIVE,
                    en.c.due_at <= now,
                    sa.or_(en.c.lease_until.is_(None), en.c.lease_until < now),
                )
                .order_by(en.c.due_at)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = conn.execute(
                sa.update(en)
                .where(en.c.id.in_(due.scalar_subquery()))
                .values(lease_owner=worker, lease_until=now + LEASE)
                .returning(
                    en.c.id,
                    en.c.tenant_id,
                    en.c.journey_id,
                    en.c.contact_id,
                    en.c.step,
                    en.c.steps_run,
                    en.c.awaiting,
                )
            ).all()
        return [Claimed(*r) for r in rows]

    def run_due(self, worker: str, limit: int = 500) -> int:
        """Claim due enrollments and advance each until it waits, ends or exits; steps run."""
        return self.runner.advance(worker, self.claim(worker, limit))

    def _send(self, c: Claimed, step: int, body: dict[str, Any]) -> None:
        who = Principal(c.tenant_id, f"journey:{c.journey_id}", frozenset({"send"}))
        with db.reader(self.engine) as conn:
            contact = conn.execute(sa.select(ct).where(ct.c.id == c.contact_id)).one()
            footer = {
                "postal_address": compliance.postal_address(compliance.tenant_settings(conn, c.tenant_id))
            }
        source, _ = self.campaigns.templates.source(c.tenant_id, body["template"], body.get("version"))
        meta = {"journey_id": c.journey_id, "enrollment_id": c.id}
        out = Outgoing(body["from"], Purpose(body["purpose"]), None, meta, footer)
        # Idempotent per (enrollment, step): a runner that died after queueing replays it.
        idem = Idempotency(f"journey:{c.id}:{step}", f"{c.journey_id}:{step}")
        try:
            message_id, refused = self.campaigns.queue_message(
                who, out, contact, Compiled(source), None, idem
            )
        except SealmailError:
            return  # a render or address problem is this contact's; the journey goes on
        snap = Snapshot(
            body["purpose"],
            bool(body.get("remunerated")),
            None,
            [f"journey:{c.journey_id}:{step}"],
            int(body.get("quiet_start", 21)),
            int(body.get("quiet_end", 8)),
        )
        with db.write(self.engine) as conn:
            if (
                conn.execute(
                    sa.select(mkt_sends.c.message_id).where(mkt_sends.c.message_id == message_id)
                ).first()
                is None
            ):
                record_send(
                    conn,
                    c.tenant_id,
                    c.contact_id,
                    message_id,
                    snap,
                    enrollment_id=c.id,
                    journey_id=c.journey_id,
                    step=step,
                    refused=refused,
                )

    def enrollments(self, tenant_id: str, journey_id: str) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(en)
                .where(en.c.tenant_id == tenant_id, en.c.journey_id == journey_id)
                .order_by(en.c.created_at)
            ).all()
        return [
            {
                "id": r.id,
                "contact_id": r.contact_id,
                "step": r.step,
                "state": r.state,
                "due_at": r.due_at.isoformat(),
                "steps_run": r.steps_run,
                "last_reason": r.last_reason,
            }
            for r in rows
        ]
