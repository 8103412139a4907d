"""Marketing analytics: what happened to the sends of a campaign variant or a journey node,
and conversions reported by API.

``tally`` counts, per group of ``mkt_sends`` rows (a variant, a journey step), the sends by
state (queued, sent, skipped) and the distinct messages with each event: delivered,
bounced, complained, unsubscribed, converted, and opened and clicked **by humans only**
(an event the engagement classifier marked as a machine's — ``machine_open`` on an open,
``bot_suspected`` on a click: a scanner, a mail proxy's prefetch — is left out).  Each
message counts once per kind however often it was opened.

A journey's nodes are its steps in order; a node that sends has counts, every node shows
how many enrollments are at it now (waiting, or due).  ``record_conversion`` writes a
``message.converted`` event on a message a campaign or journey sent (404 for any other),
so conversions join the same counts, and webhooks subscribed to ``message.*`` see them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import NotFound
from sealmail.marketing.states import EnrollmentState
from sealmail.marketing.tables import mkt_enrollments as en
from sealmail.marketing.tables import mkt_journeys as jr
from sealmail.marketing.tables import mkt_sends
from sealmail.store import db
from sealmail.store import events as event_store
from sealmail.store.events import EventType
from sealmail.store.tables import events
from sealmail.suppressions.export import csv_line

STAT_EVENTS = (
    EventType.DELIVERED,
    EventType.BOUNCED,
    EventType.COMPLAINED,
    EventType.UNSUBSCRIBED,
    EventType.OPENED,
    EventType.CLICKED,
    EventType.CONVERTED,
)
KINDS = {str(k): k.name.lower() for k in STAT_EVENTS}
HUMAN_ONLY = (str(EventType.OPENED), str(EventType.CLICKED))
METRICS = ("queued", "sent", "skipped", *KINDS.values())


def tally(conn: Connection, tenant_id: str, scope: Sequence[Any], group: Any) -> dict[Any, dict[str, int]]:
    """Per value of ``group`` (a ``mkt_sends`` column): every metric, zero when none."""
    mine = (mkt_sends.c.tenant_id == tenant_id, *scope)
    human = event_store.by_a_person()
    sends = conn.execute(
        sa.select(group, mkt_sends.c.state, sa.func.count()).where(*mine).group_by(group, mkt_sends.c.state)
    ).all()
    seen = conn.execute(
        sa.select(group, events.c.type, sa.func.count(sa.distinct(events.c.message_id)))
        .join(events, events.c.message_id == mkt_sends.c.message_id)
        .where(
            *mine,
            events.c.tenant_id == tenant_id,
            events.c.type.in_(list(KINDS)),
            sa.or_(events.c.type.not_in(HUMAN_ONLY), human),
        )
        .group_by(group, events.c.type)
    ).all()
    out: dict[Any, dict[str, int]] = {}
    for key, state, n in sends:
        row = out.setdefault(key, dict.fromkeys(METRICS, 0))
        row[state] = row.get(state, 0) + n
    for key, kind, n in seen:
        out.setdefault(key, dict.fromkeys(METRICS, 0))[KINDS[kind]] = n
    return out


@dataclass(frozen=True, slots=True)
class NodeStats:
    step: int
    kind: str
    detail: str  # the template sent, the event awaited, the list joined… (never contact data)
    at_node: int  # enrollments at this step now (waiting or due)
    queued: int
    sent: int
    skipped: int
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int
    opened: int
    clicked: int
    converted: int


@dataclass(frozen=True, slots=True)
class JourneyStats:
    journey_id: str
    name: str
    version: int
    nodes: list[NodeStats]


@dataclass(frozen=True, slots=True)
class Conversion:
    message_id: str
    name: str
    campaign_id: str | None
    journey_id: str | None
    step: int | None


def _detail(kind: str, body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)[:60] if kind == "add_to_list" else ""
    key = {"send": "template", "wait": "hours", "wait_until": "event", "update_attribute": "name"}
    return str(body.get(key.get(kind, "label"), ""))[:60]


class Analytics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def journey(self, tenant_id: str, journey_id: str) -> JourneyStats:
        """Every node of a journey version with its sends' outcomes (404 for another tenant's)."""
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(jr).where(jr.c.tenant_id == tenant_id, jr.c.id == journey_id)
            ).first()
            if row is None:
                raise NotFound(f"no journey {journey_id!r}")
            counts = tally(conn, tenant_id, [mkt_sends.c.journey_id == journey_id], mkt_sends.c.step)
            here: dict[int, int] = dict(
                conn.execute(
                    sa.select(en.c.step, sa.func.count())
                    .where(en.c.journey_id == journey_id, en.c.state == EnrollmentState.ACTIVE)
                    .group_by(en.c.step)
                ).all()
            )
        nodes = []
        for i, step in enumerate(row.definition["steps"]):
            kind, body = next(iter(step.items()))
            c = counts.get(i, dict.fromkeys(METRICS, 0))
            nodes.append(
                NodeStats(i, kind, _detail(kind, body), int(here.get(i, 0)), *(c[m] for m in METRICS))
            )
        return JourneyStats(row.id, row.name, row.version, nodes)

    def journey_csv(self, tenant_id: str, journey_id: str) -> Iterator[str]:
        stats = self.journey(tenant_id, journey_id)
        names = list(NodeStats.__dataclass_fields__)
        yield csv_line(names)
        for node in stats.nodes:
            values = asdict(node)
            yield csv_line([str(values[n]) for n in names])

    def record_conversion(
        self, tenant_id: str, message_id: str, name: str, value: float | None, *, actor: str
    ) -> Conversion:
        """A conversion for a message a campaign or journey sent; one event per report."""
        with db.write(self.engine) as conn:
            send = conn.execute(
                sa.select(mkt_sends).where(
                    mkt_sends.c.tenant_id == tenant_id, mkt_sends.c.message_id == message_id
                )
            ).first()
            if send is None:
                raise NotFound(f"no campaign or journey message {message_id!r}")
            data: dict[str, Any] = {"conversion": name}
            if value is not None:
                data["value"] = value
            event_store.emit(
                conn,
                tenant_id=tenant_id,
                message_id=message_id,
                type_=EventType.CONVERTED,
                recipient_id=None,
                recipient=None,
                data=data,
                at=datetime.now(UTC),
            )
            audit.append(
                conn,
                action=AuditAction.MKT_CONVERSION_RECORDED,
                actor=actor,
                tenant_id=tenant_id,
                target=message_id,
                details={"conversion": name},
            )
        return Conversion(message_id, name, send.campaign_id, send.journey_id, send.step)
