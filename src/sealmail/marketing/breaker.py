"""The complaint-rate circuit breaker: a campaign whose recipients complain too often pauses.

Mailbox providers throttle and then block a sender whose spam-complaint rate passes about
0.3% (Gmail's and Yahoo's bulk-sender rules): past that, every other tenant's mail from the
same IPs suffers.  ``sweep`` (run by the marketing loop) counts, for each campaign that still
has queued sends, its sent messages and the distinct ones with a ``message.complained``
event (an ARF feedback-loop report, bounces/inbound.py).  Once at least ``min_sent`` are sent
and complaints / sent exceeds ``rate`` the campaign becomes ``paused``: the claim gate then
defers its remaining recipients instead of sending them.  The pause is one guarded update
(two sweepers cannot both pause), audited, and the tenant's owners are mailed an alert.
A user may resume it (``campaign_runs``): from then on only the sends and complaints after
the resume count, so it is paused again only if complaints keep coming.

Journeys are watched the same way, per journey version (``mkt_sends.journey_id``), while
one has an active enrollment or a queued send: over the threshold the journey is paused
(``journeys.pause_journey``, audited): its enrollments are held at their send steps and
the claim gate defers its queued messages; resuming it (``Journeys.resume``) opens a new
window in the same way.

Thresholds are tenant settings ``marketing.complaint_rate`` (default 0.003) and
``marketing.complaint_min_sent`` (default 1000).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.marketing.compliance import tenant_settings
from sealmail.marketing.journey_switches import pause_journey
from sealmail.marketing.states import RUNNING, CampaignStatus, EnrollmentState, SendState
from sealmail.marketing.tables import mkt_campaigns as cp
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.marketing.tables import mkt_sends
from sealmail.store import db
from sealmail.store.events import EventType
from sealmail.store.tables import events

DEFAULT_RATE = 0.003
DEFAULT_MIN_SENT = 1000
Alert = Callable[[str, str, str], None]  # (tenant, subject, text): users.alerts.OwnerMailer


def thresholds(settings: Mapping[str, Any]) -> tuple[float, int]:
    raw = settings.get("marketing")
    m: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    rate = m.get("complaint_rate", DEFAULT_RATE)
    least = m.get("complaint_min_sent", DEFAULT_MIN_SENT)
    return (
        float(rate) if isinstance(rate, int | float) else DEFAULT_RATE,
        int(least) if isinstance(least, int) else DEFAULT_MIN_SENT,
    )


class Breaker:
    def __init__(self, engine: Engine, alert: Alert | None = None) -> None:
        self.engine = engine
        self.alert = alert

    def sweep(self) -> list[str]:
        """Pause every running campaign and sending journey over its tenant's threshold;
        the ids paused now."""
        with db.reader(self.engine) as conn:
            running = conn.execute(
                sa.select(cp.c.id, cp.c.tenant_id, cp.c.name, cp.c.resumed_at)
                .where(
                    cp.c.status.in_(RUNNING),
                    sa.exists().where(
                        mkt_sends.c.campaign_id == cp.c.id, mkt_sends.c.state == SendState.QUEUED
                    ),
                )
                .order_by(cp.c.id)
            ).all()
            sending = conn.execute(
                sa.select(jr.c.id, jr.c.tenant_id, jr.c.name, jr.c.version, jr.c.resumed_at)
                .where(
                    jr.c.paused_reason.is_(None),
                    sa.or_(
                        sa.exists().where(en.c.journey_id == jr.c.id, en.c.state == EnrollmentState.ACTIVE),
                        sa.exists().where(
                            mkt_sends.c.journey_id == jr.c.id, mkt_sends.c.state == SendState.QUEUED
                        ),
                    ),
                )
                .order_by(jr.c.id)
            ).all()
        paused = []
        for row in running:
            tally = self._tally(row.tenant_id, mkt_sends.c.campaign_id == row.id, row.resumed_at)
            if tally is not None and self._pause(row.tenant_id, row.id, tally):
                paused.append(row.id)
                self._alert(row.tenant_id, "Campaign", row.name, row.id, tally)
        for j in sending:
            tally = self._tally(j.tenant_id, mkt_sends.c.journey_id == j.id, j.resumed_at)
            if tally is None:
                continue
            with db.write(self.engine) as conn:
                now_paused = pause_journey(
                    conn, j.tenant_id, j.id, "complaint_rate", "system:complaint-breaker", tally
                )
            if now_paused:
                paused.append(j.id)
                self._alert(j.tenant_id, "Journey", f"{j.name} v{j.version}", j.id, tally)
        return paused

    def _alert(self, tenant_id: str, kind: str, name: str, target: str, tally: dict[str, Any]) -> None:
        if self.alert is None:
            return
        self.alert(
            tenant_id,
            f"{kind} paused: {name} drew too many spam complaints",
            f"{kind} {name} ({target}) was paused automatically: {tally['complaints']} "
            f"complaints from {tally['sent']} sent messages, over the threshold of "
            f"{tally['rate']:.2%}. Its remaining recipients are held. Check the audience's "
            "consent and the content before resuming.\n",
        )

    def _tally(self, tenant_id: str, scope: Any, since: datetime | None) -> dict[str, Any] | None:
        """The counts of the sends in ``scope`` (one campaign's or journey's) when over the
        threshold, else None; after a resume, only what was sent and complained since (the
        user who resumed has dealt with the earlier complaints)."""
        mine: tuple[Any, ...] = (mkt_sends.c.tenant_id == tenant_id, scope)
        if since is not None:
            mine = (*mine, mkt_sends.c.sent_at >= since)
        with db.reader(self.engine) as conn:
            rate, least = thresholds(tenant_settings(conn, tenant_id))
            sent = conn.execute(
                sa.select(sa.func.count()).where(*mine, mkt_sends.c.state == SendState.SENT)
            ).scalar_one()
            if sent < least:
                return None
            complaints = conn.execute(
                sa.select(sa.func.count(sa.distinct(events.c.message_id)))
                .join(mkt_sends, mkt_sends.c.message_id == events.c.message_id)
                .where(
                    *mine,
                    events.c.tenant_id == tenant_id,
                    events.c.type == str(EventType.COMPLAINED),
                    *([events.c.created_at >= since] if since is not None else []),
                )
            ).scalar_one()
        if complaints <= rate * sent:
            return None
        return {"sent": sent, "complaints": complaints, "rate": rate, "min_sent": least}

    def _pause(self, tenant_id: str, campaign_id: str, tally: dict[str, Any]) -> bool:
        with db.write(self.engine) as conn:
            done = conn.execute(
                sa.update(cp)
                .where(cp.c.id == campaign_id, cp.c.tenant_id == tenant_id, cp.c.status.in_(RUNNING))
                .values(status=CampaignStatus.PAUSED)
            ).rowcount
            if done:
                audit.append(
                    conn,
                    action=AuditAction.MKT_CAMPAIGN_PAUSED,
                    actor="system:complaint-breaker",
                    tenant_id=tenant_id,
                    target=campaign_id,
                    details=tally,
                )
        return bool(done)
