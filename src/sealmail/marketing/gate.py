"""The claim gate: ``decide_send`` for every claimed marketing recipient, at every claim.

A campaign or journey message carries the ``MARKETING_TAG`` from its acceptance (the tag
is written in the message's own transaction) and a ``mkt_sends`` row naming its contact,
purpose and quiet hours.  When a worker claims such a recipient, the gate reads the facts
in one transaction — the consent ledger's current state, the newest authorization, the
suppression list, the contact's status, this purpose's sends inside the cap window — and
applies ``domain.marketing.decide_send``:

* send: the ``mkt_sends`` row becomes ``sent`` (it now counts against the cap);
* defer: the recipient goes back to ``deferred`` until the given time, no attempt counted;
* skip: the recipient is ``rejected`` with the reason, and a ``message.rejected`` event.

A send of a paused campaign (by a user, or by the complaint breaker) is deferred
(``campaign_paused``); one of a cancelled campaign is skipped (``campaign_cancelled``).
A send of a paused journey (by a user, the complaint breaker, or a step failing its
pre-send checks at run time) is deferred too (``journey_paused``).

A tagged message without its ``mkt_sends`` row fails closed: deferred briefly (the row is
written right after acceptance), rejected once it is older than ``SNAPSHOT_GRACE``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.domain import marketing as rules
from sealmail.domain.marketing import ConsentState, Decision, Defer, Purpose, Send, SendFacts, Skip
from sealmail.domain.statuses import RecipientStatus
from sealmail.domain.tls_policy import Stream
from sealmail.marketing.states import CampaignStatus, SendState
from sealmail.marketing.tables import mkt_authorizations as au
from sealmail.marketing.tables import mkt_campaigns, mkt_caps, mkt_journeys, mkt_sends
from sealmail.marketing.tables import mkt_consent_current as cur
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.messages.queue import Claimed, QueuedMessage
from sealmail.store import events as ev
from sealmail.store.tables import recipients
from sealmail.suppressions import screening
from sealmail.suppressions.rules import match, normalize

MARKETING_TAG = "sealmail:marketing"
SNAPSHOT_GRACE = timedelta(minutes=10)
WAIT_FOR_SNAPSHOT = timedelta(seconds=30)
PAUSED_RECHECK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class _Facts:
    sends: dict[str, Any]  # message id -> mkt_sends joined with the contact
    consent: dict[tuple[str, str], str]  # (contact, purpose) -> state
    auths: dict[tuple[str, str], rules.Authorization]  # (contact, purpose) -> newest
    caps: dict[tuple[str, str], tuple[int, timedelta]]  # (tenant, purpose) -> (max, window)
    recent: dict[tuple[str, str], list[datetime]]  # (contact, purpose) -> sent_at in the window
    suppressed: set[tuple[str, str]]  # (tenant, address)


class SendGate:
    def concerns(self, claimed: Sequence[Claimed], msgs: Mapping[str, QueuedMessage]) -> bool:
        """Whether any claimed recipient is of a marketing message (no database read)."""
        return any(MARKETING_TAG in msgs[c.message_id].tags for c in claimed)

    def screen(
        self,
        conn: Connection,
        worker: str,
        claimed: Sequence[Claimed],
        msgs: Mapping[str, QueuedMessage],
        now: datetime | None = None,
    ) -> set[str]:
        now = now or datetime.now(UTC)
        ours = [c for c in claimed if MARKETING_TAG in msgs[c.message_id].tags]
        if not ours:
            return set()
        facts = _gather(conn, ours, now)
        held: set[str] = set()
        # In contact order, so two messages to one contact in this claim see each other's cap.
        for c in sorted(
            ours,
            key=lambda c: (facts.sends[c.message_id].contact_id if c.message_id in facts.sends else "", c.id),
        ):
            decision = self._decide(c, msgs[c.message_id], facts, now)
            if isinstance(decision, Send):
                row = facts.sends[c.message_id]
                facts.recent.setdefault((row.contact_id, row.purpose), []).append(now)
                conn.execute(
                    sa.update(mkt_sends)
                    .where(mkt_sends.c.message_id == c.message_id)
                    .values(state=SendState.SENT, sent_at=now, reason=None)
                )
                continue
            held.add(c.id)
            if isinstance(decision, Defer):
                _defer(conn, worker, c, decision, now)
            else:
                _skip(conn, worker, c, decision, now)
        return held

    def _decide(self, c: Claimed, msg: QueuedMessage, facts: _Facts, now: datetime) -> Decision:
        row = facts.sends.get(c.message_id)
        if row is None:
            if now - msg.created_at > SNAPSHOT_GRACE:
                return Skip("no_snapshot")
            return Defer(now + WAIT_FOR_SNAPSHOT, "snapshot_pending")
        if row.campaign_status == CampaignStatus.PAUSED:  # paused by a user or the complaint breaker
            return Defer(now + PAUSED_RECHECK, "campaign_paused")
        if row.campaign_status == CampaignStatus.CANCELLED:  # what was still queued never goes
            return Skip("campaign_cancelled")
        if row.journey_paused is not None:  # by a user, the breaker, or a check failing at run time
            return Defer(now + PAUSED_RECHECK, "journey_paused")
        purpose = Purpose(row.purpose)
        gated = Purpose.MARKETING if purpose is Purpose.MARKETING or row.remunerated else purpose
        state = facts.consent.get((row.contact_id, gated))
        cap = facts.caps.get((c.tenant_id, row.purpose))
        return rules.decide_send(
            SendFacts(
                purpose=purpose,
                remunerated=row.remunerated,
                contact_status=row.status,
                consent=ConsentState(state) if state else None,
                authorization=facts.auths.get((row.contact_id, str(Purpose.MARKETING))),
                suppressed=(c.tenant_id, normalize(c.address)) in facts.suppressed,
                sent_in_window=tuple(facts.recent.get((row.contact_id, row.purpose), ())),
                cap=cap[0] if cap else None,
                cap_window=cap[1] if cap else timedelta(0),
                tz=row.tz,
                quiet_start=row.quiet_start,
                quiet_end=row.quiet_end,
                now=now,
            )
        )


def _gather(conn: Connection, ours: Sequence[Claimed], now: datetime) -> _Facts:
    ids = sorted({c.message_id for c in ours})
    sends = {
        r.message_id: r
        for r in conn.execute(
            sa.select(
                mkt_sends,
                ct.c.status,
                ct.c.tz,
                mkt_campaigns.c.status.label("campaign_status"),
                mkt_journeys.c.paused_reason.label("journey_paused"),
            )
            .join(ct, ct.c.id == mkt_sends.c.contact_id)
            .outerjoin(mkt_campaigns, mkt_campaigns.c.id == mkt_sends.c.campaign_id)
            .outerjoin(mkt_journeys, mkt_journeys.c.id == mkt_sends.c.journey_id)
            .where(mkt_sends.c.message_id.in_(ids))
        )
    }
    contacts = sorted({r.contact_id for r in sends.values()})
    tenants = sorted({c.tenant_id for c in ours})
    consent = {
        (r.contact_id, r.purpose): r.state
        for r in conn.execute(
            sa.select(cur.c.contact_id, cur.c.purpose, cur.c.state).where(
                cur.c.contact_id.in_(contacts), cur.c.channel == "email"
            )
        )
    }
    auths: dict[tuple[str, str], rules.Authorization] = {}
    for r in conn.execute(authorizations_of(tenants, contacts)):
        auths[(r.contact_id, r.purpose)] = rules.Authorization(
            r.expires_at, r.revoked_at is not None, r.remuneration
        )
    caps = {
        (r.tenant_id, r.purpose): (r.max_sends, timedelta(hours=r.window_hours))
        for r in conn.execute(sa.select(mkt_caps).where(mkt_caps.c.tenant_id.in_(tenants)))
    }
    longest = max((w for _, w in caps.values()), default=timedelta(0))
    recent: dict[tuple[str, str], list[datetime]] = {}
    if caps:
        for s in conn.execute(
            sa.select(
                mkt_sends.c.contact_id, mkt_sends.c.purpose, mkt_sends.c.sent_at, mkt_sends.c.tenant_id
            ).where(
                mkt_sends.c.contact_id.in_(contacts),
                mkt_sends.c.state == SendState.SENT,
                mkt_sends.c.sent_at > now - longest,
            )
        ):
            window = caps.get((s.tenant_id, s.purpose), (0, timedelta(0)))[1]
            if s.sent_at > now - window:
                recent.setdefault((s.contact_id, s.purpose), []).append(s.sent_at)
    found = screening.lookup(conn, ((c.tenant_id, c.address) for c in ours), now)
    suppressed = {key for key, entries in found.items() if match(entries, str(Stream.BROADCAST))}
    return _Facts(sends, consent, auths, caps, recent, suppressed)


def authorizations_of(tenants: list[str], contacts: list[str]) -> sa.Select[Any]:
    """The contacts' marketing authorizations, oldest signed first (the last one wins).

    By tenant and contact: the only index on ``mkt_authorizations`` leads with the tenant,
    and by contact alone every claim read the whole table (SQLite: a scan)."""
    return (
        sa.select(au.c.contact_id, au.c.purpose, au.c.expires_at, au.c.revoked_at, au.c.remuneration)
        .where(au.c.tenant_id.in_(tenants), au.c.contact_id.in_(contacts))
        .order_by(au.c.signed_at, au.c.created_at)
    )


def _release(conn: Connection, worker: str, c: Claimed, values: dict[str, Any]) -> bool:
    done = conn.execute(
        sa.update(recipients)
        .where(
            recipients.c.id == c.id,
            recipients.c.lease_owner == worker,
            recipients.c.status == RecipientStatus.DELIVERING,
        )
        .values(lease_owner=None, lease_until=None, **values)
    ).rowcount
    return bool(done)


def _defer(conn: Connection, worker: str, c: Claimed, d: Defer, now: datetime) -> None:
    _release(
        conn,
        worker,
        c,
        {
            "status": RecipientStatus.DEFERRED,
            "next_attempt_at": d.until,
            "last_reason": d.reason,
            "last_detail": f"held: {d.reason}",
            "updated_at": now,
        },
    )
    conn.execute(
        sa.update(mkt_sends).where(mkt_sends.c.message_id == c.message_id).values(reason=d.reason[:40])
    )


def _skip(conn: Connection, worker: str, c: Claimed, s: Skip, now: datetime) -> None:
    released = _release(
        conn,
        worker,
        c,
        {
            "status": RecipientStatus.REJECTED,
            "last_reason": s.reason[:40],
            "last_detail": f"not sent: {s.reason}",
            "updated_at": now,
        },
    )
    if not released:
        return
    conn.execute(
        sa.update(mkt_sends)
        .where(mkt_sends.c.message_id == c.message_id)
        .values(state=SendState.SKIPPED, reason=s.reason[:40])
    )
    ev.emit(
        conn,
        tenant_id=c.tenant_id,
        message_id=c.message_id,
        type_=ev.EventType.REJECTED,
        recipient_id=c.id,
        recipient=c.address,
        data={"reason": s.reason, "at": "delivery", "gate": "marketing"},
        at=now,
    )
