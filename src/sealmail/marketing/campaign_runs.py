"""A started campaign's life: its audience expanded in the background, pause, resume, cancel.

Starting a campaign (``Campaigns.send``) only checks it and marks it ``starting``; the
marketing housekeeping loop (``runtime.run_marketing``) calls ``expand_due``, which claims
one ``starting`` campaign at a time under a lease — ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so several worker processes never expand the same campaign, and one
``UPDATE … RETURNING`` under SQLite's write lock — and walks the segment in id order from
the campaign's ``expand_cursor``, a batch at a time.  Per batch the contacts and the
``mkt_sends`` rows already written are read once, and the idempotency keys
(``campaign:{id}:{contact}``) of messages stored before a crash are looked up in one
query; each remaining member's message is rendered, screened and sealed (one that cannot
be made — a render or address problem — counts as failed), and then the messages and
their ``mkt_sends`` rows (the audience snapshot) are written in ONE transaction: a
message never commits without its snapshot.  A suppressed address is refused at intake
as ever; its row is written ``skipped`` (``suppressed``).  Then one guarded update moves
the cursor, adds the batch's counts and renews the lease.

An expander that dies mid-batch leaves the cursor at the last finished batch: once its
lease runs out another claims the campaign and redoes that batch, finding each contact
whose transaction committed already recorded (its ``mkt_sends`` row) and each one queued
under its idempotency key without a row (written before sends were batched) replayed,
so every contact gets exactly one message.  Two expanders can hold the same batch only
after a pause and resume; the second to commit fails on the first's keys or rows
(IntegrityError), and redoes the batch once from fresh reads, which find them done.

Once the segment is exhausted the campaign is ``sending``; ``settle`` makes it ``sent``
when the claim gate has decided every send.  Pausing stops the expansion (the guarded
update needs ``starting``) and makes the gate defer the sends still queued; resuming
goes back to ``starting`` (not fully expanded) or ``sending`` and opens a new window for
the complaint breaker (only sends and complaints after the resume count, so a campaign the
breaker paused can be resumed once its cause is fixed); cancelling skips whatever is still
queued.  Each change is one guarded update with its audit entry.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.marketing import Purpose
from sealmail.errors import Conflict, NotFound, SealmailError, ValidationFailed
from sealmail.marketing import compliance
from sealmail.marketing import segments as seg
from sealmail.marketing.campaigns import (
    Campaigns,
    Outgoing,
    Snapshot,
    pick_variant,
    record_sends,
    refused,
    send_row,
    store_prepared,
)
from sealmail.marketing.rules import Compiled as Where
from sealmail.marketing.states import CANCELLABLE, PAUSABLE, RESUMABLE, CampaignStatus, SendState
from sealmail.marketing.tables import mkt_campaigns as cp
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_segments, mkt_sends
from sealmail.messages.group_commit import Pending
from sealmail.messages.service import Accepted
from sealmail.messages.submission import Idempotency
from sealmail.store import db
from sealmail.templates.render import Compiled
from sealmail.tenancy.service import Principal

LEASE = timedelta(minutes=2)
BATCH = 500


Member = tuple[str, str, list[str]]  # a segment page's (contact id, time zone, matched reasons)


@dataclass(frozen=True, slots=True)
class Claim:
    campaign_id: str
    tenant_id: str
    started_by: str


@dataclass(frozen=True, slots=True)
class Transition:
    campaign_id: str
    before: str
    after: str


@dataclass(slots=True)
class _Tally:
    audience: int = 0
    queued: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every batch of one campaign's expansion needs, read once per claim."""

    who: Principal
    row: Any
    where: Where
    compiled: dict[str, Compiled]
    footer: dict[str, str]


class CampaignRuns:
    def __init__(
        self, engine: Engine, campaigns: Campaigns, *, lease: timedelta = LEASE, batch: int = BATCH
    ) -> None:
        self.engine = engine
        self.campaigns = campaigns
        self.lease = lease
        self.batch = batch

    # -- expansion -----------------------------------------------------------------------------
    def claim(self, worker: str) -> Claim | None:
        """Lease one ``starting`` campaign nobody holds (or whose holder's lease ran out)."""
        now = datetime.now(UTC)
        free = sa.or_(cp.c.lease_until.is_(None), cp.c.lease_until < now)
        with self.engine.begin() as conn:
            pick = (
                sa.select(cp.c.id)
                .where(cp.c.status == CampaignStatus.STARTING, free)
                .order_by(cp.c.started_at)
                .limit(1)
            )
            if conn.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            row = conn.execute(
                sa.update(cp)
                .where(cp.c.id.in_(pick.scalar_subquery()), cp.c.status == CampaignStatus.STARTING, free)
                .values(lease_owner=worker[:80], lease_until=now + self.lease)
                .returning(cp.c.id, cp.c.tenant_id, cp.c.started_by)
            ).first()
        return None if row is None else Claim(row.id, row.tenant_id, row.started_by or "system")

    def expand_due(self, worker: str) -> int:
        """Claim and expand ``starting`` campaigns until none is left; the contacts queued."""
        total = 0
        while (claim := self.claim(worker)) is not None:
            total += self.expand(worker, claim)
        return total

    def expand(self, worker: str, claim: Claim) -> int:
        """Expand a claimed campaign from its cursor to the end (or until paused or lost)."""
        try:
            plan = self._plan(claim)
        except ValidationFailed as exc:
            # A segment or template stored before a check was added (or tightened) no longer
            # compiles: retried under every lease it would fail for ever, so it is paused with
            # the reason, for a person to edit and resume.
            with contextlib.suppress(Conflict, NotFound):  # cancelled or gone meanwhile
                self._move(
                    claim.tenant_id, claim.campaign_id, f"system:{worker}"[:80], PAUSABLE,
                    AuditAction.MKT_CAMPAIGN_PAUSED, reason=exc.extra.get("errors") or str(exc),
                )  # fmt: skip
            return 0
        cursor = plan.row.expand_cursor or ""
        queued = 0
        while True:
            with db.reader(self.engine) as conn:
                batch = seg.page(conn, claim.tenant_id, plan.where, cursor, self.batch)
            if not batch:
                self._complete(worker, claim)
                return queued
            tally = self._queue_batch(plan, batch)
            cursor = batch[-1][0]
            if not self._advance(worker, claim, cursor, tally):
                return queued  # paused, cancelled, or the lease went to another expander
            queued += tally.queued

    def _plan(self, claim: Claim) -> _Plan:
        tenant_id = claim.tenant_id
        with db.reader(self.engine) as conn:
            row = conn.execute(sa.select(cp).where(cp.c.id == claim.campaign_id)).one()
            rule = conn.execute(
                sa.select(mkt_segments.c.rule).where(mkt_segments.c.id == row.segment_id)
            ).scalar_one()
            where = self.campaigns.segments.compile(conn, tenant_id, rule)
            footer = {
                "postal_address": compliance.postal_address(compliance.tenant_settings(conn, tenant_id))
            }
        templates = self.campaigns.templates
        compiled = {
            v["name"]: Compiled(templates.source(tenant_id, v["template"], v["version"])[0])
            for v in row.variants
        }
        who = Principal(tenant_id, claim.started_by, frozenset({"send"}))
        return _Plan(who, row, where, compiled, footer)

    def _queue_batch(self, plan: _Plan, batch: list[Member]) -> _Tally:
        """Queue a batch's contacts: their messages and ``mkt_sends`` rows in one transaction."""
        try:
            return self._try_batch(plan, batch)
        except IntegrityError:
            # An expander that still held this batch when a pause and resume let another in
            # stored some of its keys or rows first: fresh reads find those done or replayed.
            return self._try_batch(plan, batch)

    def _try_batch(self, plan: _Plan, batch: list[Member]) -> _Tally:
        row, tally = plan.row, _Tally(audience=len(batch))
        ids = [b[0] for b in batch]
        with db.reader(self.engine) as conn:
            contacts = {r.id: r for r in conn.execute(sa.select(ct).where(ct.c.id.in_(ids)))}
            done = set(
                conn.execute(
                    sa.select(mkt_sends.c.contact_id).where(
                        mkt_sends.c.campaign_id == row.id, mkt_sends.c.contact_id.in_(ids)
                    )
                ).scalars()
            )
        # Recorded by an expander that died before moving the cursor.
        tally.queued = len(done)
        todo = [b for b in batch if b[0] not in done]
        keys = {c: Idempotency(f"campaign:{row.id}:{c}", f"campaign:{row.id}") for c, _, _ in todo}
        replays, taken = self._replays(row.tenant_id, list(keys.values()))
        out = Outgoing(
            row.from_address, Purpose(row.purpose), row.send_at, {"campaign_id": row.id}, plan.footer
        )
        made: list[tuple[str, Pending | Accepted, Snapshot]] = []
        for contact_id, _tz, matched in todo:
            variant = pick_variant(row.id, contact_id, row.variants)
            idem = keys[contact_id]
            prepared: Pending | Accepted | None = replays.get(idem.key)
            if prepared is None and contact_id in contacts and idem.key not in taken:
                prepared = self._prepare(plan, out, contacts[contact_id], variant["name"], idem)
            if prepared is None or contact_id not in contacts:
                tally.failed += 1  # gone since the page was read, or no message could be made
                continue
            snap = Snapshot(
                row.purpose, row.remunerated, variant["name"], matched, row.quiet_start, row.quiet_end
            )
            made.append((contact_id, prepared, snap))
        if made:
            with db.write(self.engine) as conn:
                stored = store_prepared(conn, self.campaigns.messages, [p for _, p, _ in made])
                record_sends(
                    conn,
                    [
                        send_row(row.tenant_id, c, a.id, snap, campaign_id=row.id, refused=refused(a))
                        for (c, _, snap), a in zip(made, stored, strict=True)
                        if a is not None
                    ],
                )
        tally.queued += len(made)
        return tally

    def _replays(self, tenant_id: str, keys: list[Idempotency]) -> tuple[dict[str, Accepted], set[str]]:
        """The batch's messages stored before a crash, by idempotency key, in one query; and
        the keys another request took (a conflict: only their contacts fail, as one by one)."""
        messages = self.campaigns.messages
        try:
            return messages.replayed_many(tenant_id, keys), set()
        except SealmailError:
            replays, taken = {}, set()
            for idem in keys:
                try:
                    found = messages.replayed(tenant_id, idem)
                except SealmailError:
                    taken.add(idem.key)
                    continue
                if found is not None:
                    replays[idem.key] = found
            return replays, taken

    def _prepare(
        self, plan: _Plan, out: Outgoing, contact: Any, variant: str, idem: Idempotency
    ) -> Pending | None:
        """One contact's message rendered, screened and sealed; None when it cannot be made
        (a render or address problem is that contact's)."""
        try:
            sub = self.campaigns.submission(plan.who, out, contact, plan.compiled[variant], variant)
            return self.campaigns.messages.prepare(plan.who, sub, idem)
        except SealmailError:
            return None

    def _advance(self, worker: str, claim: Claim, cursor: str, t: _Tally) -> bool:
        """Move the cursor and add the batch's counts while the lease is ours; False if not."""
        now = datetime.now(UTC)
        with db.write(self.engine) as conn:
            moved = conn.execute(
                sa.update(cp)
                .where(
                    cp.c.id == claim.campaign_id,
                    cp.c.status == CampaignStatus.STARTING,
                    cp.c.lease_owner == worker[:80],
                )
                .values(
                    expand_cursor=cursor,
                    audience=sa.func.coalesce(cp.c.audience, 0) + t.audience,
                    queued=sa.func.coalesce(cp.c.queued, 0) + t.queued,
                    failed=sa.func.coalesce(cp.c.failed, 0) + t.failed,
                    lease_until=now + self.lease,
                )
            ).rowcount
        return bool(moved)

    def _complete(self, worker: str, claim: Claim) -> None:
        now = datetime.now(UTC)
        with db.write(self.engine) as conn:
            row = conn.execute(
                sa.update(cp)
                .where(
                    cp.c.id == claim.campaign_id,
                    cp.c.status == CampaignStatus.STARTING,
                    cp.c.lease_owner == worker[:80],
                )
                .values(status=CampaignStatus.SENDING, expanded_at=now, lease_owner=None, lease_until=None)
                .returning(cp.c.audience, cp.c.queued, cp.c.failed)
            ).first()
            if row is not None:
                audit.append(
                    conn,
                    action=AuditAction.MKT_CAMPAIGN_FINISHED,
                    actor=f"system:{worker}"[:80],
                    tenant_id=claim.tenant_id,
                    target=claim.campaign_id,
                    details={
                        "audience": row.audience or 0,
                        "queued": row.queued or 0,
                        "failed": row.failed or 0,
                    },
                )

    def settle(self) -> int:
        """``sending`` campaigns whose every send the claim gate decided become ``sent``."""
        waiting = sa.exists().where(mkt_sends.c.campaign_id == cp.c.id, mkt_sends.c.state == SendState.QUEUED)
        with db.write(self.engine) as conn:
            return int(
                conn.execute(
                    sa.update(cp)
                    .where(cp.c.status == CampaignStatus.SENDING, sa.not_(waiting))
                    .values(status=CampaignStatus.SENT)
                ).rowcount
                or 0
            )

    # -- pause, resume, cancel -----------------------------------------------------------------
    def pause(self, tenant_id: str, campaign_id: str, actor: str) -> Transition:
        """Hold a starting or sending campaign: expansion stops, queued sends are deferred."""
        return self._move(tenant_id, campaign_id, actor, PAUSABLE, AuditAction.MKT_CAMPAIGN_PAUSED)

    def resume(self, tenant_id: str, campaign_id: str, actor: str) -> Transition:
        """Continue a paused campaign where it stopped: expansion from its cursor, then sending."""
        return self._move(tenant_id, campaign_id, actor, RESUMABLE, AuditAction.MKT_CAMPAIGN_RESUMED)

    def cancel(self, tenant_id: str, campaign_id: str, actor: str) -> Transition:
        """Stop for good: nothing more is expanded, the claim gate skips what is still queued."""
        return self._move(tenant_id, campaign_id, actor, CANCELLABLE, AuditAction.MKT_CAMPAIGN_CANCELLED)

    def _move(
        self,
        tenant_id: str,
        campaign_id: str,
        actor: str,
        allowed: tuple[CampaignStatus, ...],
        action: AuditAction,
        reason: Any = None,
    ) -> Transition:
        with db.write(self.engine) as conn:
            row = conn.execute(
                sa.select(cp.c.status, cp.c.expanded_at)
                .where(cp.c.tenant_id == tenant_id, cp.c.id == campaign_id)
                .with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no campaign {campaign_id!r}")
            if row.status not in allowed:
                raise Conflict(f"campaign {campaign_id} is {row.status}; only {' or '.join(allowed)} may be")
            after = {
                AuditAction.MKT_CAMPAIGN_PAUSED: CampaignStatus.PAUSED,
                AuditAction.MKT_CAMPAIGN_CANCELLED: CampaignStatus.CANCELLED,
            }.get(action, CampaignStatus.SENDING if row.expanded_at is not None else CampaignStatus.STARTING)
            values: dict[str, Any] = {"status": after, "lease_owner": None, "lease_until": None}
            if action is AuditAction.MKT_CAMPAIGN_RESUMED:
                values["resumed_at"] = datetime.now(UTC)  # the complaint breaker starts a new window
            conn.execute(
                sa.update(cp).where(cp.c.id == campaign_id, cp.c.status == row.status).values(**values)
            )
            audit.append(
                conn,
                action=action,
                actor=actor,
                tenant_id=tenant_id,
                target=campaign_id,
                details={"from": row.status, "to": after} | ({"reason": reason} if reason else {}),
            )
        return Transition(campaign_id, row.status, after)
