"""Campaigns: a purpose, a pinned segment version, template versions as A/B variants, a
schedule with quiet hours; starting one hands it to ``campaign_runs``, which snapshots the
audience and queues one message each in the background.

Each member of the segment gets its own message, rendered from its variant with the
contact's attributes (PHI personalization is allowed: the message is encrypted at rest
and SecureLine protects it per recipient at delivery).  The message carries the
``MARKETING_TAG``, and a ``mkt_sends`` row records who it is for, why they were in the
audience (the matched conditions, never values), the purpose and the quiet hours: the
claim gate decides from that row at every claim, so nothing here decides consent.

Variants are picked by a hash of (campaign, contact), weighted: the same contact always
gets the same variant, and a re-run never flips it.  Marketing and fundraising go on the
broadcast stream (RFC 8058 one-click unsubscribe, the opt-out 164.514(f) requires in
every fundraising message); treatment and operations on the phi stream.

Size: one service over one table pair (create, read, list, stats, audience, pre-send
checks, send); splitting it would scatter the campaign's single write path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.marketing import PhiClass, Purpose
from sealmail.domain.statuses import RecipientStatus
from sealmail.domain.tls_policy import Stream
from sealmail.errors import Conflict, NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.marketing import analytics, compliance
from sealmail.marketing import segments as seg
from sealmail.marketing.gate import MARKETING_TAG
from sealmail.marketing.states import CampaignStatus, SendState
from sealmail.marketing.tables import mkt_campaigns as cp
from sealmail.marketing.tables import mkt_caps, mkt_segments, mkt_sends
from sealmail.messages.compose import MAX_SCHEDULE
from sealmail.messages.group_commit import Pending
from sealmail.messages.outgoing import MessageSpec
from sealmail.messages.service import Accepted, Messages
from sealmail.messages.submission import Submission
from sealmail.store import db
from sealmail.suppressions.export import csv_line
from sealmail.templates import personalize as p
from sealmail.templates.render import Compiled
from sealmail.templates.store import TemplateStore
from sealmail.tenancy.service import Principal

MAX_VARIANTS = 5
BROADCAST_PURPOSES = frozenset({Purpose.MARKETING, Purpose.FUNDRAISING})
OpenSecrets = Callable[[str, Any], dict[str, Any]]


def pick_variant(campaign_id: str, contact_id: str, variants: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(int(v["weight"]) for v in variants)
    point = int.from_bytes(hashlib.sha256(f"{campaign_id}/{contact_id}".encode()).digest()[:8], "big") % total
    for v in variants:
        point -= int(v["weight"])
        if point < 0:
            return v
    return variants[-1]


class Campaigns:
    def __init__(
        self,
        engine: Engine,
        messages: Messages,
        templates: TemplateStore,
        segments: seg.Segments,
        open_secrets: OpenSecrets,
        message_id_domain: str,
    ) -> None:
        self.engine = engine
        self.messages = messages
        self.templates = templates
        self.segments = segments
        self.open_secrets = open_secrets
        self.domain = message_id_domain

    # -- caps ----------------------------------------------------------------------------------
    def set_cap(
        self, tenant_id: str, purpose: str, max_sends: int, window_hours: int, actor: str
    ) -> dict[str, Any]:
        if purpose not in set(Purpose):
            raise ValidationFailed([{"field": "purpose", "message": f"use one of {', '.join(Purpose)}"}])
        with db.write(self.engine) as conn:
            key = (mkt_caps.c.tenant_id == tenant_id, mkt_caps.c.purpose == purpose)
            values = {"max_sends": max_sends, "window_hours": window_hours}
            if conn.execute(sa.update(mkt_caps).where(*key).values(**values)).rowcount == 0:
                conn.execute(sa.insert(mkt_caps).values(tenant_id=tenant_id, purpose=purpose, **values))
            audit.append(
                conn,
                action=AuditAction.MKT_CAP_SET,
                actor=actor,
                tenant_id=tenant_id,
                target=purpose,
                details=values,
            )
        return {"purpose": purpose, **values}

    def caps(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every purpose with its frequency cap, ``None`` where the tenant set none."""
        with db.reader(self.engine) as conn:
            rows = {
                r.purpose: r
                for r in conn.execute(sa.select(mkt_caps).where(mkt_caps.c.tenant_id == tenant_id))
            }
        return [
            {
                "purpose": str(p),
                "max_sends": rows[p].max_sends if p in rows else None,
                "window_hours": rows[p].window_hours if p in rows else None,
            }
            for p in Purpose
        ]

    # -- campaigns -----------------------------------------------------------------------------
    def create(
        self, tenant_id: str, body: dict[str, Any], *, actor: str, allowed: frozenset[PhiClass]
    ) -> dict[str, Any]:
        """A draft with the segment's newest version and each variant's template version pinned."""
        try:
            parse_address(body["from"], "from")
        except InvalidAddress as exc:
            raise ValidationFailed([{"field": "from", "message": exc.reason}]) from exc
        _check_send_at(body.get("send_at"))
        variants = body["variants"]
        if not 1 <= len(variants) <= MAX_VARIANTS or len({v["name"] for v in variants}) != len(variants):
            raise ValidationFailed(
                [{"field": "variants", "message": f"1–{MAX_VARIANTS} variants with distinct names"}]
            )
        pinned = []
        for i, v in enumerate(variants):
            try:
                _, version = self.templates.source(tenant_id, v["template"], v.get("version"))
            except NotFound as exc:
                raise ValidationFailed([{"field": f"variants[{i}].template", "message": exc.detail}]) from exc
            pinned.append(
                {
                    "name": v["name"],
                    "template": v["template"],
                    "version": version,
                    "weight": v.get("weight", 1),
                }
            )
        campaign_id = new_id("cmp")
        with db.write(self.engine) as conn:
            segment = seg.find(conn, tenant_id, body["segment"])
            seg.check_classes(segment.classes, allowed)
            conn.execute(
                sa.insert(cp).values(
                    id=campaign_id,
                    tenant_id=tenant_id,
                    name=body["name"],
                    purpose=body["purpose"],
                    remunerated=bool(body.get("remunerated")),
                    segment_id=segment.id,
                    from_address=body["from"],
                    variants=pinned,
                    send_at=body.get("send_at"),
                    quiet_start=body.get("quiet_start", 21),
                    quiet_end=body.get("quiet_end", 8),
                    status=CampaignStatus.DRAFT,
                    created_by=actor[:80],
                    created_at=datetime.now(UTC),
                )
            )
            audit.append(
                conn,
                action=AuditAction.MKT_CAMPAIGN_CREATED,
                actor=actor,
                tenant_id=tenant_id,
                target=campaign_id,
                details={
                    "purpose": body["purpose"],
                    "segment": segment.id,
                    "variants": [v["name"] for v in pinned],
                },
            )
        return self.get(tenant_id, campaign_id)

    def get(self, tenant_id: str, campaign_id: str) -> dict[str, Any]:
        with db.reader(self.engine) as conn:
            row = _campaign(conn, tenant_id, campaign_id)
            states = conn.execute(
                sa.select(mkt_sends.c.state, mkt_sends.c.reason, sa.func.count())
                .where(mkt_sends.c.campaign_id == campaign_id, mkt_sends.c.tenant_id == tenant_id)
                .group_by(mkt_sends.c.state, mkt_sends.c.reason)
            ).all()
        return {
            "id": row.id,
            "name": row.name,
            "purpose": row.purpose,
            "remunerated": row.remunerated,
            "segment_id": row.segment_id,
            "variants": row.variants,
            "send_at": row.send_at.isoformat() if row.send_at else None,
            "quiet_hours": [row.quiet_start, row.quiet_end],
            "status": row.status,
            "audience": row.audience,
            "queued": row.queued,
            "failed": row.failed or 0,
            "sends": [{"state": s, "reason": r, "count": n} for s, r, n in states],
        }

    def stats(self, tenant_id: str, campaign_id: str) -> dict[str, Any]:
        """Per variant: queued, sent, skipped, delivered, bounced, complaints, unsubscribes,
        conversions, and opens and clicks by humans only (events a scanner or a mail proxy
        made are left out), each counted once per message (``analytics.tally``)."""
        self.get(tenant_id, campaign_id)  # 404 for another tenant's campaign
        with db.reader(self.engine) as conn:
            counts = analytics.tally(
                conn, tenant_id, [mkt_sends.c.campaign_id == campaign_id], mkt_sends.c.variant
            )
        return {"campaign_id": campaign_id, "variants": {str(k): v for k, v in counts.items()}}

    def stats_csv(self, tenant_id: str, campaign_id: str) -> list[str]:
        """``stats`` as RFC 4180 lines, one row per variant (built whole: a 404 comes first)."""
        counts = self.stats(tenant_id, campaign_id)["variants"]
        header = ["variant", *analytics.METRICS]
        return [
            csv_line(header),
            *(
                csv_line([name, *(str(row.get(m, 0)) for m in analytics.METRICS)])
                for name, row in counts.items()
            ),
        ]

    def page(self, tenant_id: str, limit: int = 50, cursor: str = "") -> dict[str, Any]:
        """Campaigns newest first, ``limit`` at a time (ids are time-ordered: the cursor is
        the last id seen), each with its send tallies like ``recent``."""
        with db.reader(self.engine) as conn:
            query = sa.select(cp.c.id).where(cp.c.tenant_id == tenant_id)
            if cursor:
                query = query.where(cp.c.id < cursor)
            ids = list(conn.execute(query.order_by(cp.c.id.desc()).limit(limit + 1)).scalars())
        mine = ids[:limit]
        return {
            "data": self._summaries(tenant_id, mine),
            "next_cursor": mine[-1] if len(ids) > limit and mine else None,
        }

    def recent(self, tenant_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest campaigns with what happened to their sends (the console's table)."""
        with db.reader(self.engine) as conn:
            ids = list(
                conn.execute(
                    sa.select(cp.c.id)
                    .where(cp.c.tenant_id == tenant_id)
                    .order_by(cp.c.created_at.desc())
                    .limit(limit)
                ).scalars()
            )
        return self._summaries(tenant_id, ids)

    def _summaries(self, tenant_id: str, ids: list[str]) -> list[dict[str, Any]]:
        with db.reader(self.engine) as conn:
            found = {
                r.id: r
                for r in conn.execute(sa.select(cp).where(cp.c.tenant_id == tenant_id, cp.c.id.in_(ids)))
            }
            rows = [found[i] for i in ids if i in found]
            states = conn.execute(
                sa.select(mkt_sends.c.campaign_id, mkt_sends.c.state, mkt_sends.c.reason, sa.func.count())
                .where(mkt_sends.c.tenant_id == tenant_id, mkt_sends.c.campaign_id.in_(ids))
                .group_by(mkt_sends.c.campaign_id, mkt_sends.c.state, mkt_sends.c.reason)
            ).all()
        out = []
        for r in rows:
            mine = [(s, why, n) for cid, s, why, n in states if cid == r.id]
            out.append(
                {
                    "id": r.id,
                    "name": r.name,
                    "purpose": r.purpose,
                    "remunerated": r.remunerated,
                    "status": r.status,
                    "segment_id": r.segment_id,
                    "created_at": r.created_at.isoformat(),
                    "audience": r.audience,
                    "sent": sum(n for s, _, n in mine if s == SendState.SENT),
                    "skipped": {str(why): n for s, why, n in mine if s == SendState.SKIPPED},
                }
            )
        return out

    def audience(
        self, tenant_id: str, campaign_id: str, limit: int = 100, cursor: str = ""
    ) -> dict[str, Any]:
        """The audience snapshot: who was targeted, with which variant, and why."""
        with db.reader(self.engine) as conn:
            _campaign(conn, tenant_id, campaign_id)  # another tenant's id is a 404, not an empty page
            rows = conn.execute(
                sa.select(mkt_sends)
                .where(
                    mkt_sends.c.tenant_id == tenant_id,
                    mkt_sends.c.campaign_id == campaign_id,
                    mkt_sends.c.message_id > cursor,
                )
                .order_by(mkt_sends.c.message_id)
                .limit(limit + 1)
            ).all()
        page = rows[:limit]
        return {
            "data": [
                {
                    "message_id": r.message_id,
                    "contact_id": r.contact_id,
                    "variant": r.variant,
                    "matched": r.matched,
                    "state": r.state,
                    "reason": r.reason,
                }
                for r in page
            ],
            "next_cursor": page[-1].message_id if len(rows) > limit and page else None,
        }

    def send(self, who: Principal, campaign_id: str, *, allowed: frozenset[PhiClass]) -> dict[str, Any]:
        """Check the draft and mark it ``starting``; the marketing loop expands the audience
        in the background (``campaign_runs``).  Once only: a started campaign is 409."""
        tenant_id = who.tenant_id
        with db.write(self.engine) as conn:
            row = conn.execute(
                sa.select(cp).where(cp.c.tenant_id == tenant_id, cp.c.id == campaign_id).with_for_update()
            ).first()
            if row is None:
                raise NotFound(f"no campaign {campaign_id!r}")
            if row.status != CampaignStatus.DRAFT:
                raise Conflict(f"campaign {campaign_id} is {row.status}; campaigns are sent once")
            self._precheck(conn, tenant_id, row)
            segment = conn.execute(sa.select(mkt_segments).where(mkt_segments.c.id == row.segment_id)).one()
            seg.check_classes(frozenset(PhiClass(c) for c in segment.phi_classes), allowed)
            conn.execute(
                sa.update(cp)
                .where(cp.c.id == campaign_id, cp.c.status == CampaignStatus.DRAFT)
                .values(
                    status=CampaignStatus.STARTING,
                    started_at=datetime.now(UTC),
                    started_by=who.credential_id[:80],
                    audience=0,
                    queued=0,
                    failed=0,
                )
            )
            audit.append(
                conn,
                action=AuditAction.MKT_CAMPAIGN_STARTED,
                actor=who.credential_id,
                tenant_id=tenant_id,
                target=campaign_id,
                details={
                    "segment": segment.id,
                    "phi_classes": sorted(segment.phi_classes),
                    # Tracking a PHI purpose happens only on the tenant's explicit opt-in;
                    # the start records which way it went.
                    **compliance.tracking_decision(
                        compliance.tenant_settings(conn, tenant_id), Purpose(row.purpose)
                    ),
                },
            )
        return self.get(tenant_id, campaign_id)

    def _precheck(self, conn: Connection, tenant_id: str, row: Any) -> None:
        """Refuse to start with every failed compliance check named (422)."""
        failures = self._failures(conn, tenant_id, row)
        if failures:
            raise ValidationFailed(
                [{"field": f"compliance.{f.check}", "message": f.message} for f in failures],
                detail=f"campaign {row.id} fails {len(failures)} pre-send check(s): "
                + ", ".join(sorted({f.check for f in failures})),
            )

    def checks(self, tenant_id: str, campaign_id: str) -> list[dict[str, str]]:
        """The pre-send checks a draft fails now (the console shows them before Start)."""
        with db.reader(self.engine) as conn:
            row = _campaign(conn, tenant_id, campaign_id)
            failures = self._failures(conn, tenant_id, row)
        return [{"check": f.check, "message": f.message} for f in failures]

    def _failures(self, conn: Connection, tenant_id: str, row: Any) -> list[compliance.Failure]:
        sources = [
            (v["name"], self.templates.source(tenant_id, v["template"], v["version"])[0])
            for v in row.variants
        ]
        return compliance.check(conn, tenant_id, Purpose(row.purpose), row.from_address, sources)

    def submission(
        self, who: Principal, out: Outgoing, contact: Any, template: Compiled, variant: str | None = None
    ) -> Submission:
        """One contact's message, rendered and tagged, ready to be accepted."""
        variables = {
            **(contact.attrs or {}),
            **self.open_secrets(who.tenant_id, contact),
            "email": contact.email,
            **out.footer,
        }
        base = MessageSpec(
            from_=out.sender,
            to=(contact.email,),
            stream=Stream.BROADCAST if out.purpose in BROADCAST_PURPOSES else Stream.PHI,
            tags=(MARKETING_TAG,),
            metadata={
                **out.metadata,
                "purpose": str(out.purpose),
                **({"variant": variant} if variant else {}),
            },
            send_at=out.send_at,
        )
        message = p.personalize(base, p.render_or_fail(template, variables))
        return p.submission(message, self.domain, 1)


def store_prepared(
    conn: Connection, messages: Messages, made: list[Pending | Accepted]
) -> list[Accepted | None]:
    """Write the new messages among ``made`` (the rest were replayed by their idempotency
    keys) in the caller's open transaction, which then writes their ``mkt_sends`` rows:
    each one's stored result, or None for a replayed message whose row is already there."""
    fresh = [p for p in made if isinstance(p, Pending)]
    stored = iter(messages.write_prepared_many(conn, fresh) if fresh else [])
    accepted = [p if isinstance(p, Accepted) else next(stored) for p in made]
    # Only a replayed message can already have its row (a new one has a new id).
    old = [p.id for p in made if isinstance(p, Accepted)]
    known = (
        set(conn.execute(sa.select(mkt_sends.c.message_id).where(mkt_sends.c.message_id.in_(old))).scalars())
        if old
        else set()
    )
    return [None if a.id in known else a for a in accepted]


def refused(result: Accepted) -> bool:
    """Every recipient was rejected at intake (a suppressed address)."""
    return all(r.status == RecipientStatus.REJECTED for r in result.recipients)


def _check_send_at(send_at: datetime | None) -> None:
    """A schedule the queue can keep: an instant (a zone-less time is refused rather than
    guessed, and compared with an aware one it was a 500), at most ``MAX_SCHEDULE`` ahead
    like any scheduled message."""
    if send_at is None:
        return
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise ValidationFailed([{"field": "send_at", "message": "needs a time zone, e.g. Z or +02:00"}])
    if send_at > datetime.now(UTC) + MAX_SCHEDULE:
        days = MAX_SCHEDULE.days
        raise ValidationFailed([{"field": "send_at", "message": f"can be at most {days} days ahead"}])


def _campaign(conn: Connection, tenant_id: str, campaign_id: str) -> Any:
    row = conn.execute(sa.select(cp).where(cp.c.tenant_id == tenant_id, cp.c.id == campaign_id)).first()
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}")
    return row


@dataclass(frozen=True, slots=True)
class Outgoing:
    sender: str
    purpose: Purpose
    send_at: datetime | None
    metadata: dict[str, str]
    footer: dict[str, str] = field(default_factory=dict)  # the sender's own values: postal_address


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the claim gate needs to know of one send, and why its contact was targeted."""

    purpose: str
    remunerated: bool
    variant: str | None
    matched: list[str]
    quiet_start: int
    quiet_end: int


def record_sends(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """``mkt_sends`` rows (``send_row``) in one insert."""
    if rows:
        db.bulk_insert(conn, mkt_sends, rows)


def send_row(
    tenant_id: str,
    contact_id: str,
    message_id: str,
    s: Snapshot,
    *,
    campaign_id: str | None = None,
    enrollment_id: str | None = None,
    journey_id: str | None = None,
    step: int | None = None,
    refused: bool = False,
) -> dict[str, Any]:
    """One send's ``mkt_sends`` row: what the claim gate re-checks, and why it was sent."""
    return {
        "message_id": message_id,
        "tenant_id": tenant_id,
        "contact_id": contact_id,
        "campaign_id": campaign_id,
        "enrollment_id": enrollment_id,
        "journey_id": journey_id,
        "step": step,
        "purpose": s.purpose,
        "channel": "email",
        "remunerated": s.remunerated,
        "variant": s.variant,
        "matched": s.matched,
        "quiet_start": s.quiet_start,
        "quiet_end": s.quiet_end,
        "state": str(SendState.SKIPPED if refused else SendState.QUEUED),
        "reason": "suppressed" if refused else None,
        "created_at": datetime.now(UTC),
    }
