"""The journey runner: claimed enrollments advanced a batch at a time, step by step.

A batch of claimed enrollments moves in rounds.  In a round every enrollment runs its
current step: ``send`` steps render, screen and seal their message first (outside any
transaction), then one transaction writes those messages with their ``mkt_sends`` rows,
applies the round's other steps, grouped by (journey, step) — a condition is compiled
once and tested for the whole group with one query, a list gets the group's contacts in
one insert, an attribute update is one statement, a webhook step's ``journey.webhook``
events are one insert — and moves every enrollment's pointer in the same transaction as
its step's effects (an ``add_to_list`` step enrols the contacts that joined in the journeys
that list starts, as the API's add-members does).  A ``wait_until`` step leaves its
enrollment waiting on an indexed key (``journey_events.wake`` ends it when the event
arrives); claimed again still waiting on that key, its deadline passed, so it exits
(``wait_timeout``) or jumps forward.  An
enrollment leaves the rounds when it waits, ends, exits or has run ``MAX_STEPS_PER_RUN``
steps; pointer updates carry ``lease_owner`` = this worker, so an enrollment whose lease
another runner took over is left alone.

Before a round's sends go out, ``hold`` is asked once per (journey, step): a paused
journey, or a send step that fails its pre-send compliance checks now (which pauses the
journey), holds its enrollments at that step — due again after ``HOLD_RECHECK`` or when
the journey is resumed, last reason ``journey_paused`` — and nothing is queued for them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail.marketing import attributes as attrs
from sealmail.marketing import journey_events as ev
from sealmail.marketing import lists
from sealmail.marketing import segments as seg
from sealmail.marketing.states import EnrollmentState
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.store import db

MAX_STEPS_PER_RUN = 20
HELD = "journey_paused"  # an enrollment held at a send step of a paused journey
HOLD_RECHECK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    tenant_id: str
    journey_id: str
    contact_id: str
    step: int
    steps_run: int
    awaiting: str | None = None


@dataclass(slots=True)
class _Run:
    c: Claimed
    step: int
    awaiting: str | None  # the wait-until key this enrollment was left waiting on, if any
    ran: int = 0


@dataclass(frozen=True, slots=True)
class _Move:
    run: _Run
    state: EnrollmentState
    due: datetime | None
    reason: str | None
    awaiting: str | None = None  # set only when it starts a wait-until


@dataclass(frozen=True, slots=True)
class PreparedSends:
    """A round's send-step messages, rendered, screened and sealed, nothing stored yet."""

    made: frozenset[str]  # enrollments whose message was made (the others go on without one)
    # Writes the messages and ``mkt_sends`` rows of these enrollments (a subset of ``made``)
    # in the round's transaction, together.
    write: Callable[[Connection, set[str]], None]


# (enrollment, its send step's index, the step's body) for each of a round's send steps.
SendStep = Callable[[list[tuple[Claimed, int, dict[str, Any]]]], PreparedSends]
# (tenant, journey, step, send body) -> why the step must not send now, or None.
HoldStep = Callable[[str, str, int, dict[str, Any]], str | None]


def _never_held(_tenant: str, _journey: str, _step: int, _body: dict[str, Any]) -> str | None:
    return None


class Runner:
    def __init__(
        self, engine: Engine, segments: seg.Segments, send: SendStep, hold: HoldStep = _never_held
    ) -> None:
        self.engine = engine
        self.segments = segments
        self.send = send
        self.hold = hold

    def advance(self, worker: str, claimed: list[Claimed]) -> int:
        """Advance each claimed enrollment until it waits, ends or exits; steps run."""
        if not claimed:
            return 0
        with db.reader(self.engine) as conn:
            ids = sorted({c.journey_id for c in claimed})
            steps = {
                r.id: r.definition["steps"]
                for r in conn.execute(sa.select(jr.c.id, jr.c.definition).where(jr.c.id.in_(ids)))
            }
        pending = [_Run(c, c.step, c.awaiting) for c in claimed]
        total = 0
        while pending:
            ran, pending = self._round(worker, pending, steps)
            total += ran
        return total

    def _round(
        self, worker: str, pending: list[_Run], steps: dict[str, list[dict[str, Any]]]
    ) -> tuple[int, list[_Run]]:
        """Every pending enrollment runs one step; (steps run, still going)."""
        now = datetime.now(UTC)
        final: list[_Move] = []
        groups: dict[tuple[str, int], list[_Run]] = defaultdict(list)
        sends: list[_Run] = []
        timed_out: list[_Run] = []  # wait-untils claimed at their deadline, jumping forward
        ran = 0
        for r in pending:
            plan = steps[r.c.journey_id]
            if r.ran >= MAX_STEPS_PER_RUN:
                final.append(_Move(r, EnrollmentState.ACTIVE, now, "step_budget"))
                continue
            if r.step >= len(plan):
                final.append(_Move(r, EnrollmentState.DONE, None, "completed"))
                continue
            kind, body = next(iter(plan[r.step].items()))
            r.ran += 1
            ran += 1
            if kind == "exit":
                final.append(_Move(r, EnrollmentState.EXITED, None, "exit_step"))
            elif kind == "wait":
                r.step += 1
                final.append(
                    _Move(r, EnrollmentState.ACTIVE, now + timedelta(hours=float(body["hours"])), None)
                )
            elif kind == "wait_until":
                self._wait_until(r, body, now, final, timed_out)
            elif kind == "send":
                sends.append(r)
            else:
                groups[(r.c.journey_id, r.step)].append(r)
        going: list[_Run] = list(timed_out)
        held: dict[tuple[str, int], str | None] = {}  # asked once per (journey, step) a round
        sending: list[tuple[_Run, dict[str, Any]]] = []
        for r in sends:
            body = next(iter(steps[r.c.journey_id][r.step].values()))
            key = (r.c.journey_id, r.step)
            if key not in held:
                held[key] = self.hold(r.c.tenant_id, r.c.journey_id, r.step, body)
            why = held[key]
            if why is not None:  # stays at this step: nothing is queued for it
                final.append(_Move(r, EnrollmentState.ACTIVE, now + HOLD_RECHECK, why))
                continue
            sending.append((r, body))
        prepared = self.send([(r.c, r.step, body) for r, body in sending]) if sending else None
        made: list[_Run] = []
        for r, _ in sending:
            r.step += 1
            (made if prepared is not None and r.c.id in prepared.made else going).append(r)
        with db.write(self.engine) as conn:
            # A send step is one transaction: its message, its mkt_sends row and the pointer
            # past it commit together (``_record`` below), so a runner that dies anywhere in
            # between leaves nothing queued and the enrollment at that step, to be run again
            # once its lease runs out — never a lost or a second message.  Only enrollments
            # whose lease is still this runner's are written (and, on PostgreSQL, locked
            # until the commit): one another runner took over is left to it.
            ours = _still_ours(conn, worker, [r.c.id for r in made], now)
            if prepared is not None and ours:
                prepared.write(conn, ours)
            going.extend(r for r in made if r.c.id in ours)
            for (jid, step), members in groups.items():
                kind, body = next(iter(steps[jid][step].items()))
                for r, nxt in zip(members, _apply(self.segments, conn, kind, body, members), strict=True):
                    if nxt is None:
                        final.append(_Move(r, EnrollmentState.EXITED, None, "condition"))
                    else:
                        r.step = nxt
                        going.append(r)
            _record(conn, worker, going, final, now)
        return ran, going

    @staticmethod
    def _wait_until(
        r: _Run, body: dict[str, Any], now: datetime, final: list[_Move], jumped: list[_Run]
    ) -> None:
        """Arriving: wait for the event (by its indexed key) until the deadline.  Claimed
        while still waiting on that key: the deadline passed, so exit or jump forward."""
        key = ev.awaiting_key(r.c.contact_id, body["event"])
        if r.awaiting != key:
            due = now + timedelta(hours=float(body["hours"]))
            final.append(_Move(r, EnrollmentState.ACTIVE, due, None, awaiting=key))
            return
        r.awaiting = None
        other = body.get("timeout", "exit")
        if other == "exit":
            final.append(_Move(r, EnrollmentState.EXITED, None, "wait_timeout"))
        else:
            r.step = int(other)
            jumped.append(r)


def _still_ours(conn: Connection, worker: str, ids: list[str], now: datetime) -> set[str]:
    """Of these enrollments, those still leased to this worker, touched so that PostgreSQL
    holds their rows to this transaction (SQLite's write lock already does)."""
    if not ids:
        return set()
    return set(
        conn.execute(
            sa.update(en)
            .where(en.c.id.in_(ids), en.c.lease_owner == worker)
            .values(updated_at=now)
            .returning(en.c.id)
        ).scalars()
    )


def _apply(
    segments: seg.Segments, conn: Connection, kind: str, body: Any, members: list[_Run]
) -> list[int | None]:
    """One immediate step for a group at the same (journey, step): each one's next index,
    or None to exit."""
    tenant_id, step = members[0].c.tenant_id, members[0].step
    contact_ids = [r.c.contact_id for r in members]
    if kind == "condition":
        compiled = segments.compile(conn, tenant_id, body["rule"])
        hits = set(
            conn.execute(
                sa.select(ct.c.id).where(
                    ct.c.tenant_id == tenant_id, ct.c.id.in_(contact_ids), compiled.where
                )
            ).scalars()
        )
        other = body.get("else", "exit")
        miss = None if other == "exit" else int(other)
        return [step + 1 if c in hits else miss for c in contact_ids]
    if kind == "webhook":  # the events commit with the pointer moves past this step
        ev.emit_webhooks(conn, tenant_id, [r.c for r in members], step, body)
        return [step + 1] * len(members)
    if kind == "add_to_list":
        _add_to_list(conn, tenant_id, members[0].c.journey_id, str(body), contact_ids)
        return [step + 1] * len(members)
    # update_attribute: validated as declared and non-sensitive when saved
    d = attrs.load(conn, tenant_id)[body["name"]]
    value = attrs.coerce(d, body["value"])
    if conn.dialect.name == "postgresql":
        conn.execute(
            _PG_SET_ATTR,
            {
                "name": d.name,
                "value": json.dumps(value),
                "now": datetime.now(UTC),
                "t": tenant_id,
                "ids": contact_ids,
            },
        )
        return [step + 1] * len(members)
    current = conn.execute(
        sa.select(ct.c.id, ct.c.attrs).where(ct.c.tenant_id == tenant_id, ct.c.id.in_(contact_ids))
    ).all()
    if current:
        conn.execute(
            sa.update(ct)
            .where(ct.c.id == sa.bindparam("b_id"))
            .values(attrs=sa.bindparam("b_attrs", type_=ct.c.attrs.type), updated_at=datetime.now(UTC)),
            [{"b_id": r.id, "b_attrs": {**r.attrs, d.name: value}} for r in current],
        )
    return [step + 1] * len(members)


def _add_to_list(
    conn: Connection, tenant_id: str, journey_id: str, name: str, contact_ids: list[str]
) -> None:
    """Add to the list and, like the API's add-members, enrol the contacts that joined it in
    the journeys that list starts — in this step's transaction.  Bounded: only a contact
    new to the list triggers (membership only grows), a journey never enrols into itself,
    and each enrollment is once per (journey, contact, list), so journeys that add to each
    other's lists cannot cycle."""
    joined = lists.add_members(conn, tenant_id, lists.list_id(conn, tenant_id, name), contact_ids)
    if joined:
        started = [j for j in ev.active(conn, tenant_id, "list_join", name) if j != journey_id]
        ev.enroll(conn, tenant_id, started, joined, f"list:{name}", f"journey:{journey_id}")


_PG_SET_ATTR = sa.text(
    "UPDATE mkt_contacts SET attrs = attrs || jsonb_build_object(CAST(:name AS TEXT), CAST(:value AS JSONB)),"
    " updated_at = :now WHERE tenant_id = :t AND id = ANY(CAST(:ids AS VARCHAR[]))"
)
# PostgreSQL: one statement a round, the rows as arrays unnested (two to five parameters
# however large the batch; an executemany costs the server a statement per enrollment).
_PG_GOING = sa.text(
    "UPDATE mkt_enrollments AS e SET step = v.step, steps_run = e.steps_run + 1, updated_at = :now,"
    " state = :active, last_reason = NULL, awaiting = NULL"
    " FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:steps AS INTEGER[])) AS v(id, step)"
    " WHERE e.id = v.id AND e.lease_owner = :worker"
)
_PG_FINAL = sa.text(
    "UPDATE mkt_enrollments AS e SET step = v.step, steps_run = e.steps_run + 1, updated_at = :now,"
    " state = v.state, last_reason = v.reason, due_at = coalesce(v.due, e.due_at),"
    " awaiting = v.awaiting, lease_owner = NULL, lease_until = NULL"
    " FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:steps AS INTEGER[]), CAST(:states AS VARCHAR[]),"
    " CAST(:reasons AS VARCHAR[]), CAST(:dues AS TIMESTAMPTZ[]), CAST(:awaits AS VARCHAR[]))"
    " AS v(id, step, state, reason, due, awaiting)"
    " WHERE e.id = v.id AND e.lease_owner = :worker"
)


_SQLITE_GOING = sa.text(
    "UPDATE mkt_enrollments AS e SET step = v.step, steps_run = e.steps_run + 1, updated_at = :now,"
    " state = :active, last_reason = NULL, awaiting = NULL"
    " FROM (SELECT value ->> 0 AS id, value ->> 1 AS step FROM json_each(:rows)) AS v"
    " WHERE e.id = v.id AND e.lease_owner = :worker"
).bindparams(sa.bindparam("now", type_=en.c.updated_at.type))
_SQLITE_FINAL = sa.text(
    "UPDATE mkt_enrollments AS e SET step = v.step, steps_run = e.steps_run + 1, updated_at = :now,"
    " state = v.state, last_reason = v.reason, due_at = coalesce(v.due, e.due_at),"
    " awaiting = v.awaiting, lease_owner = NULL, lease_until = NULL"
    " FROM (SELECT value ->> 0 AS id, value ->> 1 AS step, value ->> 2 AS state, value ->> 3 AS reason,"
    " value ->> 4 AS due, value ->> 5 AS awaiting FROM json_each(:rows)) AS v"
    " WHERE e.id = v.id AND e.lease_owner = :worker"
).bindparams(sa.bindparam("now", type_=en.c.updated_at.type))


def _record(conn: Connection, worker: str, going: list[_Run], final: list[_Move], now: datetime) -> None:
    """Move the pointers: ``going`` keep their lease, ``final`` release it."""
    if conn.dialect.name == "postgresql":
        scope = {"now": now, "worker": worker}
        if going:
            ids, steps = [r.c.id for r in going], [r.step for r in going]
            conn.execute(_PG_GOING, {**scope, "ids": ids, "steps": steps, "active": EnrollmentState.ACTIVE})
        if final:
            conn.execute(
                _PG_FINAL,
                {
                    **scope,
                    "ids": [m.run.c.id for m in final],
                    "steps": [m.run.step for m in final],
                    "states": [str(m.state) for m in final],
                    "reasons": [m.reason for m in final],
                    "dues": [m.due for m in final],
                    "awaits": [m.awaiting for m in final],
                },
            )
        return
    # SQLite: the same two statements, the rows as one JSON array unpacked by json_each (an
    # executemany through SQLAlchemy processed every row's parameters in Python).
    scope = {"now": now, "worker": worker}
    if going:
        rows = json.dumps([[r.c.id, r.step] for r in going])
        conn.execute(_SQLITE_GOING, {**scope, "rows": rows, "active": str(EnrollmentState.ACTIVE)})
    if final:
        due = db.bind_value(conn, en.c.due_at)
        rows = json.dumps(
            [[m.run.c.id, m.run.step, str(m.state), m.reason, due(m.due), m.awaiting] for m in final]
        )
        conn.execute(_SQLITE_FINAL, {**scope, "rows": rows})
