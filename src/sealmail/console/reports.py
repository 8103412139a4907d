"""What the console shows: the dashboard's counts, a message's delivery trail, the audit log.

Reads only, always for one tenant, and never message content: subjects and bodies live
encrypted in ``messages.content`` and nothing here opens it (reading content is a
permission of its own, audited where it happens).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail.domain.statuses import MessageStatus, aggregate
from sealmail.store import db
from sealmail.store.events import EventType
from sealmail.store.tables import attempts, audit_log, events, messages, recipients
from sealmail.users import roles
from sealmail.users.model import Session
from sealmail.users.tables import console_api_keys

TRAIL_LIMIT = 50
AUDIT_PAGE = 100


# Events the dashboard counts over its window.
COUNTED = (EventType.DEFERRED, EventType.BOUNCED, EventType.COMPLAINED, EventType.PORTAL_VIEWED)


@dataclass(frozen=True, slots=True)
class Dashboard:
    days: list[str]
    by_stream: dict[str, dict[str, int]]  # stream -> day -> messages
    by_method: dict[str, int]  # SecureLine method -> recipients
    statuses: dict[str, int]  # recipient status -> count
    deferrals: int  # deferral events in the window
    deferring_now: int  # recipients waiting to retry
    tls_versions: dict[str, int] = field(default_factory=dict)  # attempts by negotiated TLS version
    bounces: int = 0  # bounce events (at the attempt or asynchronous DSNs)
    complaints: int = 0
    portal_opens: int = 0  # portal.viewed events
    dlp_hits: int = 0  # messages in which DLP found something
    quarantined_now: int = 0  # messages held right now
    own_only: bool = False  # a sender's dashboard: the counts of their own messages only

    @property
    def peak(self) -> int:
        return max((n for days in self.by_stream.values() for n in days.values()), default=0)

    @property
    def outcomes(self) -> dict[str, int]:
        return {
            "deferrals": self.deferrals,
            "bounces": self.bounces,
            "complaints": self.complaints,
            "DLP hits": self.dlp_hits,
            "in quarantine": self.quarantined_now,
            "portal opens": self.portal_opens,
        }


@dataclass(frozen=True, slots=True)
class Narrow:
    """Find's other fields: the sender (From), a recipient status, and a range of days."""

    sender: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None  # exclusive

    def conditions(self, tenant_id: str) -> list[Any]:
        out: list[Any] = []
        if self.sender:
            out.append(sa.func.lower(messages.c.header_from) == self.sender.strip().lower())
        if self.status:
            out.append(
                messages.c.id.in_(
                    sa.select(recipients.c.message_id).where(
                        recipients.c.tenant_id == tenant_id, recipients.c.status == self.status
                    )
                )
            )
        if self.since:
            out.append(messages.c.created_at >= self.since)
        if self.until:
            out.append(messages.c.created_at < self.until)
        return out


@dataclass(frozen=True, slots=True)
class TrailAttempt:
    """One delivery attempt as recorded when it ended (``delivery`` writes these facts; the
    signed proof of delivery in ``evidence/proofs.py`` is built from the same columns)."""

    recipient_id: str
    finished_at: datetime
    status: str
    reason: str
    mx_host: str | None
    tls_version: str | None
    tls_cipher: str | None
    tls_verified: bool
    verified_by: str  # none | pkix | mta-sts | dane: what vouched for the certificate
    peer_cert_sha256: str | None  # SHA-256 of the server certificate (DER)
    smtp_code: int | None
    enhanced_code: str | None
    reply: str | None
    key_fingerprint: str | None  # the recipient key an OpenPGP / S/MIME copy went to
    key_source: str | None  # uploaded | wkd | keyserver | autocrypt | harvested


# Where a recipient key came from, as the trail names it.
KEY_SOURCES = {
    "uploaded": "uploaded to the key directory",
    "wkd": "WKD (the recipient's domain)",
    "keyserver": "the keyserver",
    "autocrypt": "Autocrypt header",
    "harvested": "signed mail (S/MIME certificate)",
}


@dataclass(frozen=True, slots=True)
class TrailRecipient:
    id: str
    address: str
    status: str
    attempts: int
    method: str | None
    method_reason: str | None
    last_reason: str | None
    last_detail: str | None
    tries: list[TrailAttempt] = field(default_factory=list)
    portal_opens: int = 0  # portal.viewed events for this recipient

    @property
    def key(self) -> TrailAttempt | None:
        """The last attempt that names the recipient key it encrypted to."""
        return next((t for t in reversed(self.tries) if t.key_fingerprint), None)

    @staticmethod
    def key_source_label(source: str | None) -> str:
        return KEY_SOURCES.get(source or "", source or "not recorded")


@dataclass(frozen=True, slots=True)
class Trail:
    message_id: str
    stream: str
    status: str
    created_at: datetime
    header_from: str
    recipients: list[TrailRecipient]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit log entry as the console's audit page lists it."""

    seq: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any] | None  # the entry's stored JSON details, as audit.append wrote them


def own_actors(conn: Connection, who: Session) -> list[str]:
    """What ``messages.actor`` holds for a person's own messages: the person (the console's
    compose) and every API key they made."""
    keys = conn.execute(
        sa.select(console_api_keys.c.api_key_id).where(
            console_api_keys.c.tenant_id == who.tenant_id, console_api_keys.c.user_id == who.user_id
        )
    ).scalars()
    return [who.actor, *keys]


def sees_whole_tenant(who: Session) -> bool:
    """Roles that follow every message (trails) or oversee the tenant (audit) get its counts;
    a sender gets the counts of their own messages only."""
    return who.may(roles.Permission.VIEW_TRAIL) or who.may(roles.Permission.VIEW_AUDIT)


class Reports:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def dashboard_for(self, who: Session, now: datetime) -> Dashboard:
        """The dashboard ``who`` may see: tenant-wide, or their own messages' counts."""
        if sees_whole_tenant(who):
            return self.dashboard(who.tenant_id, now)
        with db.reader(self.engine) as conn:
            actors = own_actors(conn, who)
        return self.dashboard(who.tenant_id, now, actors=actors)

    def dashboard(
        self, tenant_id: str, now: datetime, days: int = 7, actors: Sequence[str] | None = None
    ) -> Dashboard:
        """The tenant's counts over ``days``; with ``actors`` (a sender's own user and API-key
        ids), only the messages they sent and those messages' recipients, attempts and events."""
        since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
        labels = [(since + timedelta(days=i)).date().isoformat() for i in range(days)]
        m = messages.c
        mine: list[Any] = [] if actors is None else [m.actor.in_(list(actors))]

        def of_mine(column: Any) -> list[Any]:
            if actors is None:
                return []
            return [column.in_(sa.select(m.id).where(m.tenant_id == tenant_id, *mine))]

        with db.reader(self.engine) as conn:
            sent = conn.execute(
                sa.select(m.stream, m.created_at, m.dlp_findings).where(
                    m.tenant_id == tenant_id, m.created_at >= since, *mine
                )
            ).all()
            methods = conn.execute(
                sa.select(recipients.c.method, recipients.c.status, sa.func.count())
                .join(messages, m.id == recipients.c.message_id)
                .where(recipients.c.tenant_id == tenant_id, m.created_at >= since, *mine)
                .group_by(recipients.c.method, recipients.c.status)
            ).all()
            counted: dict[str, int] = dict(
                conn.execute(
                    sa.select(events.c.type, sa.func.count())
                    .where(
                        events.c.tenant_id == tenant_id,
                        events.c.type.in_(COUNTED),
                        events.c.created_at >= since,
                        *of_mine(events.c.message_id),
                    )
                    .group_by(events.c.type)
                ).all()
            )
            tls = conn.execute(
                sa.select(attempts.c.tls_version, sa.func.count())
                .where(
                    attempts.c.tenant_id == tenant_id, attempts.c.finished_at >= since,
                    *of_mine(attempts.c.message_id),
                )
                .group_by(attempts.c.tls_version)
            ).all()  # fmt: skip
            held = conn.execute(
                sa.select(sa.func.count()).where(
                    m.tenant_id == tenant_id, m.status == MessageStatus.QUARANTINED, *mine
                )
            ).scalar_one()
        by_stream: dict[str, dict[str, int]] = {}
        # Days are bucketed in Python: date functions differ between SQLite and PostgreSQL.
        for stream, created, _ in sent:
            by_stream.setdefault(stream, dict.fromkeys(labels, 0))
            day = created.date().isoformat()
            if day in by_stream[stream]:
                by_stream[stream][day] += 1
        by_method: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        for method, status, n in methods:
            by_method[method or "pending"] += n
            statuses[status] += n
        versions = Counter({version or "no TLS": int(n) for version, n in tls})
        return Dashboard(
            labels,
            dict(sorted(by_stream.items())),
            dict(by_method.most_common()),
            dict(statuses.most_common()),
            int(counted.get(EventType.DEFERRED, 0)),
            statuses.get("deferred", 0),
            tls_versions=dict(versions.most_common()),
            bounces=int(counted.get(EventType.BOUNCED, 0)),
            complaints=int(counted.get(EventType.COMPLAINED, 0)),
            portal_opens=int(counted.get(EventType.PORTAL_VIEWED, 0)),
            dlp_hits=sum(1 for *_, findings in sent if findings),
            quarantined_now=int(held),
            own_only=actors is not None,
        )

    def find(self, tenant_id: str, query: str, narrow: Narrow | None = None) -> list[Trail]:
        """Messages by id, Message-ID header or recipient address, and/or narrowed by sender,
        recipient status and day (never by subject or body: those are encrypted), newest first."""
        q, n = query.strip(), narrow or Narrow()
        conds = [] if not q else [
            sa.or_(
                messages.c.id == q,
                messages.c.message_id_header == q,
                messages.c.message_id_header == f"<{q.strip('<>')}>",
                messages.c.id.in_(
                    sa.select(recipients.c.message_id).where(
                        recipients.c.tenant_id == tenant_id, recipients.c.address == q.lower()
                    )
                ),
            )
        ]  # fmt: skip
        conds += n.conditions(tenant_id)
        if not conds:
            return []
        cond = sa.and_(*conds)
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(
                    messages.c.id,
                    messages.c.stream,
                    messages.c.status,
                    messages.c.created_at,
                    messages.c.header_from,
                )
                .where(messages.c.tenant_id == tenant_id, cond)
                .order_by(messages.c.id.desc())
                .limit(TRAIL_LIMIT)
            ).all()
            found = [(r, self._recipients(conn, tenant_id, r.id)) for r in rows]
        return [
            Trail(
                r.id,
                r.stream,
                str(aggregate(r.status, Counter(x.status for x in rcpts))),
                r.created_at,
                r.header_from,
                rcpts,
            )
            for r, rcpts in found
        ]

    def trail(self, tenant_id: str, message_id: str) -> Trail | None:
        """One message's trail (tenant-scoped), or None."""
        found = self.find(tenant_id, message_id)
        return next((t for t in found if t.message_id == message_id), None)

    def _recipients(self, conn: Any, tenant_id: str, message_id: str) -> list[TrailRecipient]:
        rcpts = conn.execute(
            sa.select(
                recipients.c.id,
                recipients.c.address,
                recipients.c.status,
                recipients.c.attempts,
                recipients.c.method,
                recipients.c.method_reason,
                recipients.c.last_reason,
                recipients.c.last_detail,
            )
            .where(recipients.c.tenant_id == tenant_id, recipients.c.message_id == message_id)
            .order_by(recipients.c.address)
        ).all()
        names = [f.name for f in fields(TrailAttempt)]
        tries = conn.execute(
            sa.select(*(attempts.c[n] for n in names))
            .where(attempts.c.tenant_id == tenant_id, attempts.c.message_id == message_id)
            .order_by(attempts.c.finished_at)
        ).all()
        opens: dict[str, int] = dict(
            conn.execute(
                sa.select(events.c.recipient_id, sa.func.count())
                .where(
                    events.c.tenant_id == tenant_id,
                    events.c.message_id == message_id,
                    events.c.type == EventType.PORTAL_VIEWED,
                )
                .group_by(events.c.recipient_id)
            ).all()
        )
        per: dict[str, list[TrailAttempt]] = {}
        for t in tries:
            per.setdefault(t.recipient_id, []).append(TrailAttempt(**t._mapping))
        return [
            TrailRecipient(**r._mapping, tries=per.get(r.id, []), portal_opens=int(opens.get(r.id, 0)))
            for r in rcpts
        ]

    def audit_entries(
        self, tenant_id: str, *, action: str = "", actor: str = "", before: int | None = None
    ) -> list[AuditEntry]:
        """The tenant's audit entries, newest first, a page at a time (``before`` a seq)."""
        stmt = sa.select(
            audit_log.c.seq,
            audit_log.c.at,
            audit_log.c.actor,
            audit_log.c.action,
            audit_log.c.target,
            audit_log.c.details,
        ).where(audit_log.c.tenant_id == tenant_id)
        if action:
            stmt = stmt.where(audit_log.c.action == action)
        if actor:
            stmt = stmt.where(audit_log.c.actor == actor)
        if before is not None:
            stmt = stmt.where(audit_log.c.seq < before)
        with db.reader(self.engine) as conn:
            rows = conn.execute(stmt.order_by(audit_log.c.seq.desc()).limit(AUDIT_PAGE)).all()
        return [AuditEntry(*r) for r in rows]
