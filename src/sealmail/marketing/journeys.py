"""Journeys: versioned step lists run as claimed state machines, idempotent per contact.

A journey is a trigger and a list of steps::

    {"trigger": {"type": "api_event", "event": "appointment_booked"}
              | {"type": "list_join", "list": "new-patients"}
              | {"type": "date_attribute", "attr": "recall_due", "days_before": 7,
                 "mode": "exact" | "anniversary"}
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
with its enrollment's pointer — a send step's message and ``mkt_sends`` row too, so a
runner that dies anywhere in a step neither loses nor repeats its message.  Jumps go
forward only and a run stops after ``journey_runner.MAX_STEPS_PER_RUN`` steps: a journey
cannot loop.  Sends pass the claim gate like a campaign's.

Send steps obey the campaigns' pre-send rules (``compliance``): saving a journey pins each
send step's template version (a later edit of the template does not change a running
journey) and refuses, 422 naming every failure, a step that fails a check.  The runner
checks again before a step sends; one that fails now (the domain's DKIM key was removed)
pauses the journey, audited with the failures, and its enrollments wait at that step.  A
paused journey — by a user, by that, or by the complaint breaker — holds its send steps
and the claim gate defers its queued messages, until it is resumed (which re-runs the
checks).  Tracking a PHI purpose (the tenant's explicit opt-in) is recorded per step in
the save's audit entry.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.marketing import PhiClass, Purpose
from sealmail.errors import NotFound, SealmailError
from sealmail.ids import new_id
from sealmail.marketing import attributes as attrs
from sealmail.marketing import compliance, keyset
from sealmail.marketing import journey_dates as dates
from sealmail.marketing import journey_events as ev
from sealmail.marketing import journey_switches as switches
from sealmail.marketing import segments as seg
from sealmail.marketing.campaigns import (
    Campaigns,
    Outgoing,
    Snapshot,
    record_sends,
    refused,
    send_row,
    store_prepared,
)
from sealmail.marketing.journey_defs import bad, validate
from sealmail.marketing.journey_runner import HELD, Claimed, PreparedSends, Runner
from sealmail.marketing.states import EnrollmentState
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.messages.group_commit import Pending
from sealmail.messages.service import Accepted
from sealmail.messages.submission import Idempotency
from sealmail.store import db
from sealmail.templates.render import Compiled
from sealmail.tenancy.service import Principal

LEASE = timedelta(minutes=5)
COMPILED_KEPT = 1_000  # compiled send-step templates kept per process (a full table is emptied)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    enrolled: int  # new enrollments in journeys this event triggers
    woken: int  # wait-until steps this event ended


class Journeys:
    def __init__(self, engine: Engine, campaigns: Campaigns, segments: seg.Segments) -> None:
        self.engine = engine
        self.campaigns = campaigns
        self.segments = segments
        self.runner = Runner(engine, segments, self._sends, self._held)
        # (tenant, template, pinned version) -> compiled: a pinned version never changes.
        self._compiled: dict[tuple[str, str, int], Compiled] = {}

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
        """A new active version: every send step's template version pinned and its pre-send
        compliance checks passed (422 naming each failure), as a campaign's at its start."""
        definition = copy.deepcopy(definition)  # the pinned versions go into the stored copy only
        with db.write(self.engine) as conn:
            validate(definition, attrs.load(conn, tenant_id))
            for i, step in enumerate(definition["steps"]):
                if "condition" in step:
                    compiled = self.segments.compile(conn, tenant_id, step["condition"].get("rule"))
                    seg.check_classes(compiled.classes, allowed)
                if "send" in step:
                    body = step["send"]
                    try:
                        _, body["version"] = self.campaigns.templates.source(
                            tenant_id, body["template"], body.get("version")
                        )
                    except NotFound as exc:
                        raise bad(f"steps[{i}].send.template", exc.detail) from exc
            switches.refuse(self._failures(conn, tenant_id, definition["steps"]), f"journey {name!r}")
            settings = compliance.tenant_settings(conn, tenant_id)
            tracking = {
                str(i): d["phi_tracking"]
                for i, step in enumerate(definition["steps"])
                if "send" in step
                and (d := compliance.tracking_decision(settings, Purpose(step["send"]["purpose"])))
            }
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
                # Per send step of a PHI purpose: tracked (the tenant opted in) or off.
                details={
                    "name": name,
                    "version": version,
                    **({"phi_tracking": tracking} if tracking else {}),
                },
            )
        return {"id": jid, "name": name, "version": version, "active": True}

    def _failures(
        self, conn: Connection, tenant_id: str, steps: list[dict[str, Any]]
    ) -> list[tuple[int, compliance.Failure]]:
        """The pre-send checks each send step fails now, with its index."""
        return [
            (i, f)
            for i, step in enumerate(steps)
            if "send" in step
            for f in self._step_failures(conn, tenant_id, i, step["send"])
        ]

    def _step_failures(
        self, conn: Connection, tenant_id: str, i: int, body: dict[str, Any]
    ) -> list[compliance.Failure]:
        """One send step's failed checks, against its pinned template version."""
        try:
            source, _ = self.campaigns.templates.source(tenant_id, body["template"], body.get("version"))
        except NotFound as exc:
            return [compliance.Failure("template", exc.detail)]
        variants = [(f"steps[{i}]", source)]
        return compliance.check(
            conn, tenant_id, Purpose(body["purpose"]), str(body.get("from", "")), variants
        )

    def get(self, tenant_id: str, journey_id: str) -> dict[str, Any]:
        """One version with its definition (404 for another tenant's)."""
        with db.reader(self.engine) as conn:
            row = switches.journey_row(conn, tenant_id, journey_id)
            enrolled = conn.execute(sa.select(sa.func.count()).where(en.c.journey_id == journey_id)).scalar()
        return _out(row, int(enrolled or 0))

    # -- pause and resume, activate and retire (journey_switches.py) ----------------------------
    def pause(self, tenant_id: str, journey_id: str, actor: str) -> dict[str, Any]:
        """Hold a journey's sends (409 if it is paused already)."""
        switches.pause(self.engine, tenant_id, journey_id, actor)
        return self.get(tenant_id, journey_id)

    def resume(self, tenant_id: str, journey_id: str, actor: str) -> dict[str, Any]:
        """Let a paused journey send again once its send steps pass the pre-send checks."""
        switches.resume(self.engine, tenant_id, journey_id, actor, self._failures)
        return self.get(tenant_id, journey_id)

    def set_active(self, tenant_id: str, journey_id: str, active: bool, *, actor: str) -> dict[str, Any]:
        """Start or stop enrolling on this version (activating it retires the other versions)."""
        switches.set_active(self.engine, tenant_id, journey_id, active, actor=actor)
        return self.get(tenant_id, journey_id)

    def _held(self, tenant_id: str, journey_id: str, step: int, body: dict[str, Any]) -> str | None:
        """Why a send step may not send now (None: it may).  A paused journey holds; a step
        that fails its pre-send checks now (the domain's DKIM key was removed, the postal
        address unset) pauses its journey, audited with the failures, and holds."""
        with db.reader(self.engine) as conn:
            paused = conn.execute(sa.select(jr.c.paused_reason).where(jr.c.id == journey_id)).scalar()
            if paused is not None:
                return HELD
            failed = self._step_failures(conn, tenant_id, step, body)
        if not failed:
            return None
        details = {"step": step, "failed": [{"check": f.check, "message": f.message} for f in failed]}
        with db.write(self.engine) as conn:
            switches.pause_journey(
                conn, tenant_id, journey_id, "compliance", "system:journey-runner", details
            )
        return HELD

    def all(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every version of every journey; callers that can show a page use ``page``."""
        return keyset.every(self.page, tenant_id)

    def page(self, tenant_id: str, *, limit: int = 100, cursor: str = "") -> dict[str, Any]:
        """``limit`` journey versions by name then version, after the one ``cursor`` names
        (a 422 for one not this tenant's), with enrollment counts; the next page's cursor."""
        key = [jr.c.name, jr.c.version]
        counts = sa.select(sa.func.count()).where(en.c.journey_id == jr.c.id).scalar_subquery()
        query = sa.select(jr, counts.label("enrolled")).where(jr.c.tenant_id == tenant_id)
        with db.reader(self.engine) as conn:
            if cursor:
                query = query.where(
                    keyset.beyond(key, keyset.cursor_key(conn, jr, cursor, key, jr.c.tenant_id == tenant_id))
                )
            rows = conn.execute(query.order_by(*key).limit(limit + 1)).all()
        page, after = keyset.split(rows, limit)
        return {"data": [_out(r, r.enrolled) for r in page], "next_cursor": after}

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
        """Date triggers (a recall due, a birthday): the contacts each active date-triggered
        journey's missed days and current days bring in, by each contact's own calendar
        (``journey_dates``)."""
        now = (now or datetime.now(UTC)).astimezone(UTC)
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(jr.c.id, jr.c.definition, jr.c.created_at).where(
                    jr.c.tenant_id == tenant_id, jr.c.active.is_(True)
                )
            ).all()
            dated = [r for r in rows if r.definition["trigger"]["type"] == "date_attribute"]
            # One read of the tenant's zones for all its journeys (only when one needs them).
            local = dates.tenant_dates(conn, tenant_id, now) if dated else {}
        return sum(dates.sweep(self.engine, tenant_id, r, now, local) for r in dated)

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

    def _template(self, tenant_id: str, name: str, version: Any) -> Compiled:
        if not isinstance(version, int):  # not pinned (saved before pinning): read every time
            return Compiled(self.campaigns.templates.source(tenant_id, name, version)[0])
        key = (tenant_id, name, version)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= COMPILED_KEPT:
                self._compiled.clear()
            compiled = self._compiled[key] = Compiled(self.campaigns.templates.source(*key)[0])
        return compiled

    def _sends(self, items: list[tuple[Claimed, int, dict[str, Any]]]) -> PreparedSends:
        """Render, screen and seal a round's send-step messages; the runner has them written
        (messages and ``mkt_sends`` rows, all together) in the transaction that moves the
        enrollments past their step.  A contact whose message cannot be made (a render or
        address problem is that contact's) is left out of ``made``.

        Per round, not per send: the contacts are one query, each tenant's footer and the
        replayed keys one more, and the writes one insert per table."""
        messages = self.campaigns.messages
        by_tenant: dict[str, list[tuple[Claimed, int, dict[str, Any]]]] = defaultdict(list)
        for item in items:
            by_tenant[item[0].tenant_id].append(item)
        ready: dict[str, tuple[Claimed, int, Pending | Accepted, Snapshot]] = {}
        for tenant_id, group in by_tenant.items():
            with db.reader(self.engine) as conn:
                wanted = [c.contact_id for c, _, _ in group]
                contacts = {
                    r.id: r
                    for r in conn.execute(
                        sa.select(ct).where(ct.c.tenant_id == tenant_id, ct.c.id.in_(wanted))
                    )
                }
                footer = {
                    "postal_address": compliance.postal_address(compliance.tenant_settings(conn, tenant_id))
                }
            # The key commits with the pointer, so one is found only for a message an
            # earlier runner queued in a transaction of its own (before sends were one
            # transaction).
            keys = [Idempotency(f"journey:{c.id}:{step}", f"{c.journey_id}:{step}") for c, step, _ in group]
            try:
                replays = messages.replayed_many(tenant_id, keys)
            except SealmailError:
                continue
            for (c, step, body), idem in zip(group, keys, strict=True):
                prepared = replays.get(idem.key) or self._prepare(
                    c, body, contacts.get(c.contact_id), footer, idem
                )
                if prepared is not None:
                    ready[c.id] = (c, step, prepared, _snapshot(c, step, body))

        def write(conn: Connection, ours: set[str]) -> None:
            mine = [ready[eid] for eid in ready if eid in ours]
            stored = store_prepared(conn, messages, [p for _, _, p, _ in mine])
            record_sends(
                conn,
                [
                    send_row(
                        c.tenant_id,
                        c.contact_id,
                        a.id,
                        snap,
                        enrollment_id=c.id,
                        journey_id=c.journey_id,
                        step=step,
                        refused=refused(a),
                    )
                    for (c, step, _, snap), a in zip(mine, stored, strict=True)
                    if a is not None
                ],
            )

        return PreparedSends(frozenset(ready), write)

    def _prepare(
        self, c: Claimed, body: dict[str, Any], contact: Any, footer: dict[str, str], idem: Idempotency
    ) -> Pending | None:
        """One contact's message, rendered, screened and sealed; None when it cannot be."""
        if contact is None:
            return None
        who = Principal(c.tenant_id, f"journey:{c.journey_id}", frozenset({"send"}))
        meta = {"journey_id": c.journey_id, "enrollment_id": c.id}
        out = Outgoing(body["from"], Purpose(body["purpose"]), None, meta, footer)
        try:
            template = self._template(c.tenant_id, body["template"], body.get("version"))
            sub = self.campaigns.submission(who, out, contact, template)
            return self.campaigns.messages.prepare(who, sub, idem)
        except SealmailError:
            return None

    def enrollments(
        self, tenant_id: str, journey_id: str, limit: int = 1000, after: str = ""
    ) -> list[dict[str, Any]]:
        """At most ``limit`` enrollments, by id, after the id ``after`` (a page of them)."""
        with db.reader(self.engine) as conn:
            switches.journey_row(conn, tenant_id, journey_id)  # another tenant's id: 404, not []
            rows = conn.execute(
                sa.select(en)
                .where(en.c.tenant_id == tenant_id, en.c.journey_id == journey_id, en.c.id > after)
                .order_by(en.c.id)
                .limit(limit)
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


def _out(row: Any, enrolled: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "active": row.active,
        "enrolled": enrolled,
        "definition": row.definition,
        "paused": row.paused_reason,
    }


def _snapshot(c: Claimed, step: int, body: dict[str, Any]) -> Snapshot:
    """What the claim gate re-checks for a journey send, and why it was sent."""
    return Snapshot(
        body["purpose"],
        bool(body.get("remunerated")),
        None,
        [f"journey:{c.journey_id}:{step}"],
        int(body.get("quiet_start", 21)),
        int(body.get("quiet_end", 8)),
    )
