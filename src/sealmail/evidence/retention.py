"""Retention: per-tenant periods, legal holds, and purge by crypto-shredding.

Three periods per tenant, in days, each counted from a record's creation:

* **content** — the sealed message (subject, bodies, attachments).  Purging it destroys the
  message's wrapped data key (``crypto/vault.py``): the ciphertext may stay in a backup, but
  no key that opens it is left anywhere, which is destruction in the sense of SP 800-88 for
  encrypted media and of the breach safe harbor.
* **metadata** — the delivery record.  It proves how PHI went out, so it is a compliance
  record: at least six years.  Purging it pseudonymises recipient addresses and drops the
  message's free-form metadata; statuses, methods, TLS facts and digests stay.
* **audit** — the hash-chained log.  At least six years; Sealmail never deletes entries (that
  would break the chain the anchors vouch for): the report counts what is past its period.

164.316(b)(2) and 164.530(j) ask six years from creation or last effective date, so any
policy shorter than ``FLOOR_DAYS`` for metadata or audit is refused.  A legal hold on a
message, a recipient address or the whole tenant keeps everything it covers out of every
purge until it is released.  Every policy change, hold, release, purged message and run is
audited.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.statuses import ACTIVE, MessageStatus, RecipientStatus
from sealmail.errors import InvalidRequest, NotFound, ValidationFailed
from sealmail.evidence import retention_forms
from sealmail.evidence.tables import legal_holds, retention_policies, retention_purges
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import events, messages, recipients, tenants

# Six years of 365 days plus the two leap days any six-year span can hold.
FLOOR_DAYS = 6 * 365 + 2
MAX_DAYS = 100 * 365
SCOPES = ("message", "recipient", "tenant")
# Messages shredded per transaction: bounded work, bounded lock time.
BATCH = 500
# Recipients still being delivered or held for review: their content is still needed.
_IN_FLIGHT = [str(s) for s in (*ACTIVE, RecipientStatus.QUARANTINED)]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    content_days: int = FLOOR_DAYS
    metadata_days: int = FLOOR_DAYS
    audit_days: int = FLOOR_DAYS

    def problems(self) -> list[dict[str, str]]:
        """Why this policy may not be set, field by field (empty when it may)."""
        out: list[dict[str, str]] = []
        for name in ("content_days", "metadata_days", "audit_days"):
            value = getattr(self, name)
            if not 1 <= value <= MAX_DAYS:
                out.append({"field": name, "message": f"must be between 1 and {MAX_DAYS} days"})
            elif name != "content_days" and value < FLOOR_DAYS:
                out.append(
                    {
                        "field": name,
                        "message": f"{value} days is below the six-year floor ({FLOOR_DAYS} days) that HIPAA "
                        "sets for audit and compliance records (45 CFR 164.316(b)(2), 164.530(j))",
                    }
                )
        if self.content_days > self.metadata_days:
            out.append(
                {
                    "field": "content_days",
                    "message": "may not exceed metadata_days (the record outlives the content)",
                }
            )
        return out


@dataclass(frozen=True, slots=True)
class PurgeResult:
    tenant_id: str
    shredded: int
    pseudonymised: int
    held: int  # messages past their period kept by a legal hold
    # Secure form submissions whose sealed answers were shredded, and those a hold kept.
    forms_shredded: int = 0
    forms_held: int = 0


@dataclass(frozen=True, slots=True)
class LegalHold:
    """A legal hold on a message, a recipient address or the whole tenant (times to the second)."""

    id: str
    scope: str  # message | recipient | tenant
    target: str  # the message id, the address, or the tenant's id
    reason: str
    created_at: datetime
    created_by: str
    released_at: datetime | None
    released_by: str | None
    active: bool  # not released yet


def _now() -> datetime:
    return datetime.now(UTC)


def pseudonym(address: str) -> str:
    """A stable stand-in for an address: the same patient still groups, nobody is named."""
    domain = address.rpartition("@")[2]
    return f"redacted-{hashlib.sha256(address.lower().encode()).hexdigest()[:16]}@{domain}"


class Retention:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- policy -----------------------------------------------------------------------------------
    def policy(self, tenant_id: str) -> RetentionPolicy:
        with db.reader(self.engine) as conn:
            return _policy(conn, tenant_id)

    def set_policy(self, tenant_id: str, policy: RetentionPolicy, actor: str) -> RetentionPolicy:
        problems = policy.problems()
        if problems:
            raise ValidationFailed(
                problems,
                "retention policy refused: " + "; ".join(f"{p['field']} {p['message']}" for p in problems),
            )
        now = _now()
        with self.engine.begin() as conn:
            before = _policy(conn, tenant_id)
            values = {**asdict(policy), "updated_at": now, "updated_by": actor[:80]}
            done = conn.execute(
                sa.update(retention_policies)
                .where(retention_policies.c.tenant_id == tenant_id)
                .values(values)
            )
            if done.rowcount == 0:
                conn.execute(sa.insert(retention_policies).values(tenant_id=tenant_id, **values))
            audit.append(
                conn,
                action=AuditAction.RETENTION_POLICY_SET,
                actor=actor,
                tenant_id=tenant_id,
                target=tenant_id,
                details={"before": asdict(before), "after": asdict(policy)},
            )
        return policy

    # -- legal holds -------------------------------------------------------------------------------
    def place_hold(self, tenant_id: str, scope: str, target: str, reason: str, actor: str) -> LegalHold:
        if scope not in SCOPES:
            raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}")
        reason = reason.strip()
        if not reason or len(reason) > 500:
            raise InvalidRequest("a legal hold needs a reason (1 to 500 characters)")
        target = tenant_id if scope == "tenant" else target.strip()
        if scope == "recipient":
            target = target.lower()
            if "@" not in target or len(target) > 320:
                raise InvalidRequest("a recipient hold needs an e-mail address")
        hold_id = new_id("lgh")
        now = _now()
        with self.engine.begin() as conn:
            # A "message" hold may name a form submission too (``retention_forms``).
            known = _message_exists(conn, tenant_id, target) or retention_forms.exists(
                conn, tenant_id, target
            )
            if scope == "message" and not known:
                raise NotFound(f"message {target} not found")
            conn.execute(
                sa.insert(legal_holds).values(
                    id=hold_id,
                    tenant_id=tenant_id,
                    scope=scope,
                    target=target,
                    reason=reason,
                    created_at=now,
                    created_by=actor[:80],
                )
            )
            audit.append(
                conn,
                action=AuditAction.LEGAL_HOLD_PLACED,
                actor=actor,
                tenant_id=tenant_id,
                target=hold_id,
                details={"scope": scope, "target": target, "reason": reason},
            )
        return self.hold(tenant_id, hold_id)

    def release_hold(self, tenant_id: str, hold_id: str, actor: str) -> LegalHold:
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(legal_holds)
                .where(
                    legal_holds.c.id == hold_id,
                    legal_holds.c.tenant_id == tenant_id,
                    legal_holds.c.released_at.is_(None),
                )
                .values(released_at=_now(), released_by=actor[:80])
            )
            if done.rowcount == 0:
                raise NotFound(f"active legal hold {hold_id} not found")
            audit.append(
                conn, action=AuditAction.LEGAL_HOLD_RELEASED, actor=actor, tenant_id=tenant_id, target=hold_id
            )
        return self.hold(tenant_id, hold_id)

    def hold(self, tenant_id: str, hold_id: str) -> LegalHold:
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(legal_holds).where(
                    legal_holds.c.id == hold_id, legal_holds.c.tenant_id == tenant_id
                )
            ).first()
        if row is None:
            raise NotFound(f"legal hold {hold_id} not found")
        return _hold(row)

    def holds(self, tenant_id: str, active_only: bool = False) -> list[LegalHold]:
        query = sa.select(legal_holds).where(legal_holds.c.tenant_id == tenant_id)
        if active_only:
            query = query.where(legal_holds.c.released_at.is_(None))
        with db.reader(self.engine) as conn:
            return [_hold(r) for r in conn.execute(query.order_by(legal_holds.c.created_at))]

    # -- purge -----------------------------------------------------------------------------------
    def tenants(self) -> list[str]:
        with db.reader(self.engine) as conn:
            return list(conn.execute(sa.select(tenants.c.id).order_by(tenants.c.id)).scalars())

    def purge(
        self, tenant_id: str, actor: str, now: datetime | None = None, *, audit_idle: bool = True
    ) -> PurgeResult:
        """Crypto-shred content and pseudonymise metadata past their periods, except under hold.

        Each purged message is audited, and the run with what it did; a scheduled run that
        found nothing to do (``audit_idle=False``) leaves no entry, or the log would fill
        with one per tenant per hour.
        """
        now = now or _now()
        policy = self.policy(tenant_id)
        shredded = self._purge_kind(tenant_id, "content", policy.content_days, now, actor)
        pseudonymised = self._purge_kind(tenant_id, "metadata", policy.metadata_days, now, actor)
        forms_shredded = retention_forms.purge(self.engine, tenant_id, policy.content_days, now, actor)
        with db.reader(self.engine) as conn:
            held = _held_past(conn, tenant_id, now - timedelta(days=policy.content_days))
            forms_held = retention_forms.held_past(conn, tenant_id, now - timedelta(days=policy.content_days))
        result = PurgeResult(tenant_id, shredded, pseudonymised, held, forms_shredded, forms_held)
        if not (audit_idle or shredded or pseudonymised or forms_shredded):
            return result
        with self.engine.begin() as conn:
            audit.append(
                conn,
                action=AuditAction.RETENTION_RUN,
                actor=actor,
                tenant_id=tenant_id,
                details={**asdict(result), "policy": asdict(policy), "as_of": now.isoformat()},
            )
        return result

    def _purge_kind(self, tenant_id: str, kind: str, days: int, now: datetime, actor: str) -> int:
        cutoff = now - timedelta(days=days)
        total = 0
        while True:
            with self.engine.begin() as conn:
                ids = _eligible(conn, tenant_id, kind, cutoff)
                if not ids:
                    return total
                if kind == "content":
                    _shred(conn, tenant_id, ids)
                else:
                    _pseudonymise(conn, tenant_id, ids)
                conn.execute(
                    sa.insert(retention_purges),
                    [
                        {
                            "message_id": m,
                            "kind": kind,
                            "tenant_id": tenant_id,
                            "purged_at": now,
                            "policy_days": days,
                        }
                        for m in ids
                    ],
                )
                audit.append_many(
                    conn,
                    [
                        audit.Entry(
                            AuditAction.RETENTION_PURGED, actor, tenant_id, m, {"kind": kind, "days": days}
                        )
                        for m in ids
                    ],
                )
            total += len(ids)


def _policy(conn: Connection, tenant_id: str) -> RetentionPolicy:
    row = conn.execute(
        sa.select(retention_policies).where(retention_policies.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        return RetentionPolicy()
    return RetentionPolicy(row.content_days, row.metadata_days, row.audit_days)


def _message_exists(conn: Connection, tenant_id: str, message_id: str) -> bool:
    found = conn.execute(
        sa.select(messages.c.id).where(messages.c.id == message_id, messages.c.tenant_id == tenant_id)
    ).first()
    return found is not None


def _hold(row: Any) -> LegalHold:
    return LegalHold(
        id=row.id,
        scope=row.scope,
        target=row.target,
        reason=row.reason,
        created_at=row.created_at.replace(microsecond=0),
        created_by=row.created_by,
        released_at=row.released_at.replace(microsecond=0) if row.released_at else None,
        released_by=row.released_by,
        active=row.released_at is None,
    )


def held_clause(tenant_id: str) -> sa.ColumnElement[bool]:
    """True for a message of ``tenant_id`` that an active legal hold covers (for ``messages``)."""
    active = sa.and_(legal_holds.c.tenant_id == tenant_id, legal_holds.c.released_at.is_(None))
    by_tenant = sa.exists().where(active, legal_holds.c.scope == "tenant")
    by_message = sa.exists().where(
        active, legal_holds.c.scope == "message", legal_holds.c.target == messages.c.id
    )
    by_recipient = sa.exists().where(
        active,
        legal_holds.c.scope == "recipient",
        recipients.c.message_id == messages.c.id,
        recipients.c.tenant_id == tenant_id,
        sa.func.lower(recipients.c.address) == legal_holds.c.target,
    )
    return sa.or_(by_tenant, by_message, by_recipient)


def is_held(conn: Connection, tenant_id: str, message_id: str) -> bool:
    """Whether an active legal hold covers this message (other shredders ask this too)."""
    found = conn.execute(
        sa.select(messages.c.id).where(
            messages.c.id == message_id, messages.c.tenant_id == tenant_id, held_clause(tenant_id)
        )
    ).first()
    return found is not None


def is_file_held(conn: Connection, tenant_id: str, message_id: str | None) -> bool:
    """Whether an active legal hold covers a file share: one on the tenant, or — once the file
    was sent — one on its message or on any of that message's recipients (``files/``)."""
    if message_id is not None:
        return is_held(conn, tenant_id, message_id)
    found = conn.execute(
        sa.select(legal_holds.c.id).where(
            legal_holds.c.tenant_id == tenant_id,
            legal_holds.c.scope == "tenant",
            legal_holds.c.released_at.is_(None),
        )
    ).first()
    return found is not None


def _past(tenant_id: str, cutoff: datetime) -> sa.ColumnElement[bool]:
    in_flight = sa.exists().where(
        recipients.c.message_id == messages.c.id,
        recipients.c.tenant_id == tenant_id,
        recipients.c.status.in_(_IN_FLIGHT),
    )
    # A quarantined message is never purged while quarantined, whatever its recipients' rows
    # say: the administrator's release or rejection decision needs the content it is about.
    return sa.and_(
        messages.c.tenant_id == tenant_id,
        messages.c.created_at < cutoff,
        messages.c.status != str(MessageStatus.QUARANTINED),
        ~in_flight,
    )


def _eligible(conn: Connection, tenant_id: str, kind: str, cutoff: datetime) -> list[str]:
    done = sa.exists().where(retention_purges.c.message_id == messages.c.id, retention_purges.c.kind == kind)
    query = sa.select(messages.c.id).where(_past(tenant_id, cutoff), ~held_clause(tenant_id), ~done)
    if kind == "content":
        # Already shredded by the portal's lifecycle: nothing left to destroy.
        query = query.where(messages.c.wrapped_data_key.is_not(None))
    # Another purge (a second worker, the CLI) skips the rows this one holds instead of
    # racing it to the same messages (PostgreSQL; SQLite's writers are serialised anyway).
    query = query.order_by(messages.c.id).limit(BATCH).with_for_update(skip_locked=True, of=messages)
    return list(conn.execute(query).scalars())


def _held_past(conn: Connection, tenant_id: str, cutoff: datetime) -> int:
    query = sa.select(sa.func.count()).where(
        _past(tenant_id, cutoff), held_clause(tenant_id), messages.c.wrapped_data_key.is_not(None)
    )
    return int(conn.execute(query).scalar_one())


def _shred(conn: Connection, tenant_id: str, ids: list[str]) -> None:
    # The wrapped key is what opens the content: without it the ciphertext is noise.  The
    # ciphertext goes too (an empty blob), so the row no longer carries the bulk either.
    conn.execute(
        sa.update(messages)
        .where(messages.c.tenant_id == tenant_id, messages.c.id.in_(ids))
        .values(wrapped_data_key=None, content=b"")
    )


def _pseudonymise(conn: Connection, tenant_id: str, ids: list[str]) -> None:
    rows = conn.execute(
        sa.select(recipients.c.id, recipients.c.address).where(
            recipients.c.tenant_id == tenant_id, recipients.c.message_id.in_(ids)
        )
    ).all()
    for row in rows:
        if not row.address.startswith("redacted-"):
            conn.execute(
                sa.update(recipients).where(recipients.c.id == row.id).values(address=pseudonym(row.address))
            )
            # The event stream names the recipient too (webhooks, the message timeline).
            conn.execute(
                sa.update(events)
                .where(events.c.tenant_id == tenant_id, events.c.recipient_id == row.id)
                .values(recipient=pseudonym(row.address))
            )
    conn.execute(
        sa.update(messages)
        .where(messages.c.tenant_id == tenant_id, messages.c.id.in_(ids))
        .values(metadata={})
    )
