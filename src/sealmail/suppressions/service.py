"""The suppression list: addresses a tenant must not send to, per stream or on all of them.

Size: just over 500 lines because the rules below are documented here, beside the
``Suppressions`` store that applies them; the rules' code is in ``rules.py``, intake
screening in ``screening.py`` and the CSV guard in ``export.py``.

Entries come from delivery outcomes (hard bounces, soft-fail exhaustion), from
complaints and unsubscribes, and from administrators (API, CLI).  Intake checks every
accepted batch against the list in one query and rejects the suppressed recipients
(``message.rejected``, reason ``suppressed``) while the rest of the message goes out.

Rules (research/delivery.md §c.7):

* a hard bounce naming a bad mailbox or domain (RFC 3463 X.1.x such as 5.1.1, 5.1.2,
  5.1.10; a disabled mailbox, X.2.1) suppresses the address on every stream at once;
* a recipient that expired after repeated soft failures is suppressed for
  ``SOFT_BOUNCE_TTL``, and a later successful delivery clears that soft entry;
* refusals that speak about the sender or the content (5.7.x policy, spam, TLS,
  authentication, rate limits) never suppress the recipient;
* a complaint suppresses the broadcast stream (``COMPLAINT_STREAM``): transactional
  and phi mail (results, appointments) keeps flowing;
* an unsubscribe is per stream.

Addresses are compared lower-cased as a whole.  RFC 5321 §2.4 lets a receiving system
treat local parts case-sensitively, but practically none does, and the two errors are not
alike: missing ``Jane@x`` because ``jane@x`` bounced sends mail that must not go, while
the other way round costs nothing real.  (``recipients`` searches compare lower-cased too.)

Audit entries name the suppression id, stream, reason and source, never the address:
the audit log is append-only and cannot forget an address later.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.dml import ReturningDelete

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.page import Page
from sealmail.domain.statuses import RecipientStatus
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.suppressions.export import CSV_COLUMNS as CSV_COLUMNS
from sealmail.suppressions.export import csv_line
from sealmail.suppressions.known import known
from sealmail.suppressions.rules import (
    ALL_STREAMS as ALL_STREAMS,
)
from sealmail.suppressions.rules import (
    API_REASONS as API_REASONS,
)
from sealmail.suppressions.rules import (
    CHUNK as CHUNK,
)
from sealmail.suppressions.rules import (
    COMPLAINT_STREAM as COMPLAINT_STREAM,
)
from sealmail.suppressions.rules import (
    SOFT_BOUNCE_MIN_ATTEMPTS as SOFT_BOUNCE_MIN_ATTEMPTS,
)
from sealmail.suppressions.rules import (
    SOFT_BOUNCE_TTL as SOFT_BOUNCE_TTL,
)
from sealmail.suppressions.rules import (
    STREAMS as STREAMS,
)
from sealmail.suppressions.rules import (
    DeliveryFact as DeliveryFact,
)
from sealmail.suppressions.rules import (
    SuppressionReason as SuppressionReason,
)
from sealmail.suppressions.rules import (
    match as match,
)
from sealmail.suppressions.rules import (
    normalize as normalize,
)
from sealmail.suppressions.rules import (
    outcome_rule as outcome_rule,
)
from sealmail.suppressions.screening import (
    lookup as lookup,
)
from sealmail.suppressions.screening import (
    reject_claimed as reject_claimed,
)
from sealmail.suppressions.screening import (
    suppressed as suppressed,
)
from sealmail.suppressions.tables import suppressions as sup


def _check(stream: str, reason: SuppressionReason) -> None:
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; use one of {sorted(STREAMS)}")
    SuppressionReason(reason)


def _insert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# -- writing, inside the caller's transaction ---------------------------------------------------


def suppress(
    conn: Connection,
    *,
    tenant_id: str,
    stream: str,
    address: str,
    reason: SuppressionReason,
    source: str,
    actor: str,
    message_id: str | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Upsert on (tenant, stream, address); True when a new, re-activated or changed entry was written.

    An active entry is kept as it is when the new one says nothing more: the same reason
    without a later expiry, or a soft bounce over any other reason (a soft bounce must
    never turn a permanent hard bounce or unsubscribe into one that expires).
    """
    _check(stream, reason)
    now = now or datetime.now(UTC)
    addr = normalize(address)
    values = {
        "reason": str(reason),
        "source": source[:20],
        "message_id": message_id,
        "created_by": actor[:80],
        "updated_at": now,
        "expires_at": expires_at,
    }
    key = (sup.c.tenant_id == tenant_id, sup.c.stream == stream, sup.c.address == addr)
    for _ in range(2):
        query = sa.select(sup.c.id, sup.c.reason, sup.c.expires_at).where(*key)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            new = new_id("sup")
            # ON CONFLICT DO NOTHING: a concurrent writer of the same key must not fail
            # this transaction (it may be a worker recording delivery outcomes); the
            # loser reads the winner's row and decides again.
            inserted = conn.execute(
                _insert(conn)(sup)
                .values(id=new, tenant_id=tenant_id, stream=stream, address=addr, created_at=now, **values)
                .on_conflict_do_nothing(index_elements=["tenant_id", "address", "stream"])
                .returning(sup.c.id)
            ).first()
            if inserted is None:
                continue
            # Intake answers "not on the list" from memory: this entry must count at once.
            known.added(conn, tenant_id, addr)
            _audit(
                conn,
                AuditAction.SUPPRESSION_CREATED,
                actor,
                tenant_id,
                new,
                stream,
                reason,
                source,
                expires_at,
            )
            return True
        if not _changes(row.reason, row.expires_at, reason, expires_at, now):
            return False
        conn.execute(sa.update(sup).where(sup.c.id == row.id).values(**values))
        _audit(
            conn,
            AuditAction.SUPPRESSION_UPDATED,
            actor,
            tenant_id,
            row.id,
            stream,
            reason,
            source,
            expires_at,
        )
        return True
    raise RuntimeError("suppression row vanished twice while being written")


def _changes(
    old_reason: str,
    old_expires: datetime | None,
    reason: SuppressionReason,
    expires_at: datetime | None,
    now: datetime,
) -> bool:
    if old_expires is not None and old_expires <= now:
        return True  # expired: writing it again re-activates it
    if reason == SuppressionReason.SOFT_BOUNCE and old_reason != SuppressionReason.SOFT_BOUNCE:
        return False
    if old_reason != reason:
        return True
    if old_expires is None:
        return False
    return expires_at is None or expires_at > old_expires


def _audit(
    conn: Connection,
    action: AuditAction,
    actor: str,
    tenant_id: str,
    target: str,
    stream: str,
    reason: str,
    source: str,
    expires_at: datetime | None,
) -> None:
    details: dict[str, Any] = {"stream": stream, "reason": str(reason), "source": source}
    if expires_at is not None:
        details["expires_at"] = expires_at.isoformat()
    audit.append(conn, action=action, actor=actor, tenant_id=tenant_id, target=target, details=details)


def unsuppress(conn: Connection, *, tenant_id: str, stream: str, address: str, actor: str) -> bool:
    """Remove the entry for exactly this stream (``"*"`` is its own entry); True if one existed."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    row = conn.execute(
        sa.delete(sup)
        .where(sup.c.tenant_id == tenant_id, sup.c.stream == stream, sup.c.address == normalize(address))
        .returning(sup.c.id, sup.c.reason)
    ).first()
    if row is None:
        return False
    audit.append(
        conn,
        action=AuditAction.SUPPRESSION_REMOVED,
        actor=actor,
        tenant_id=tenant_id,
        target=row.id,
        details={"stream": stream, "reason": row.reason},
    )
    return True


def suppress_complaint(
    conn: Connection,
    *,
    tenant_id: str,
    address: str,
    source: str,
    actor: str,
    message_id: str | None = None,
) -> bool:
    """A feedback-loop complaint: suppress the broadcast stream only (module docstring)."""
    return suppress(
        conn,
        tenant_id=tenant_id,
        stream=COMPLAINT_STREAM,
        address=address,
        reason=SuppressionReason.COMPLAINT,
        source=source,
        actor=actor,
        message_id=message_id,
    )


# -- delivery outcomes ---------------------------------------------------------------------------


def after_outcomes(conn: Connection, outcomes: Sequence[DeliveryFact], now: datetime | None = None) -> None:
    """Apply the rules to recorded outcomes, inside the transaction that records them.

    Called by ``messages.queue.record_in`` with the outcomes it applied (lease still held).
    Deliveries clear soft-bounce entries with one DELETE per chunk; bounces and expiries
    are rare and written one by one.
    """
    now = now or datetime.now(UTC)
    delivered: list[tuple[str, str]] = []
    for c in outcomes:
        if c.status == RecipientStatus.DELIVERED:
            delivered.append((c.tenant_id, normalize(c.address)))
            continue
        rule = outcome_rule(c.status, c.classification, c.attempt_reason, c.attempts, replied=c.replied)
        if rule is None:
            continue
        reason, ttl = rule
        suppress(
            conn,
            tenant_id=c.tenant_id,
            stream=ALL_STREAMS,
            address=c.address,
            reason=reason,
            source="smtp",
            actor="system",
            message_id=c.message_id,
            expires_at=now + ttl if ttl else None,
            now=now,
        )
    if delivered:
        _clear_soft(conn, delivered)


def _clear_soft_statement(postgresql: bool) -> ReturningDelete[Any]:
    # Built once per dialect: every worker flush with a delivery runs it, and building it
    # (with its cache key) cost more than running it.
    addresses = (
        db.any_of(sup.c.address, "b_addresses")
        if postgresql
        else sup.c.address.in_(sa.bindparam("b_addresses", expanding=True))
    )
    return (
        sa.delete(sup)
        .where(
            sup.c.tenant_id == sa.bindparam("b_tenant"),
            addresses,
            sup.c.reason == str(SuppressionReason.SOFT_BOUNCE),
        )
        .returning(sup.c.id, sup.c.tenant_id, sup.c.stream)
    )


_CLEAR_SOFT = {True: _clear_soft_statement(True), False: _clear_soft_statement(False)}


def _clear_soft(conn: Connection, pairs: list[tuple[str, str]]) -> None:
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, addr in sorted(set(pairs)):
        by_tenant.setdefault(tenant_id, []).append(addr)
    entries: list[audit.Entry] = []
    # One DELETE per tenant (and chunk) of the flush: an index search, where a row-value
    # IN over (tenant, address) scanned the whole table on SQLite.
    chunks = [
        (t, addrs[i : i + CHUNK]) for t, addrs in by_tenant.items() for i in range(0, len(addrs), CHUNK)
    ]
    clear = _CLEAR_SOFT[conn.dialect.name == "postgresql"]
    for tenant_id, chunk in chunks:
        removed = conn.execute(clear, {"b_tenant": tenant_id, "b_addresses": chunk}).all()
        entries += [
            audit.Entry(
                AuditAction.SUPPRESSION_REMOVED,
                "system",
                r.tenant_id,
                r.id,
                {"stream": r.stream, "reason": str(SuppressionReason.SOFT_BOUNCE), "source": "delivered"},
            )
            for r in removed
        ]
    audit.append_many(conn, entries)


# -- the service the API and CLI use -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    stream: str | None = None
    reason: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One suppression entry as the tenant sees it."""

    id: str
    address: str
    stream: str
    reason: str
    source: str
    message_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    active: bool  # False once expires_at has passed

    @classmethod
    def from_row(cls, row: Any, now: datetime) -> Entry:
        stored = {f.name: getattr(row, f.name) for f in fields(cls) if f.name != "active"}
        return cls(**stored, active=row.expires_at is None or row.expires_at > now)


class Suppressions:
    """List, read, add, remove and export a tenant's entries (API and CLI).

    Every query is scoped by the tenant id passed in, so another tenant's entry is
    simply not found.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @staticmethod
    def validate(
        *, address: str, stream: str, reason: str, expires_at: datetime | None, now: datetime
    ) -> tuple[str, str, SuppressionReason]:
        """Check an administrator's entry; returns (normalized address, stream, reason)."""
        errors: list[dict[str, str]] = []
        addr = ""
        try:
            parsed = parse_address(address, "address")
            if parsed.display_name:
                errors.append({"field": "address", "message": "give the bare address, without a name"})
            addr = normalize(parsed.smtp_addr_spec)
        except InvalidAddress as exc:
            errors.append({"field": exc.field, "message": exc.reason})
        if stream not in STREAMS:
            errors.append({"field": "stream", "message": f"use one of {', '.join(sorted(STREAMS))}"})
        allowed = sorted(str(r) for r in API_REASONS)
        if reason not in allowed:
            errors.append(
                {
                    "field": "reason",
                    "message": f"use one of {', '.join(allowed)}; bounces and complaints are "
                    "recorded by Sealmail itself",
                }
            )
        if expires_at is not None:
            if expires_at.tzinfo is None:
                errors.append({"field": "expires_at", "message": "needs a timezone offset, e.g. Z"})
            elif expires_at <= now:
                errors.append({"field": "expires_at", "message": "is in the past"})
        if errors:
            raise ValidationFailed(errors)
        return addr, stream, SuppressionReason(reason)

    def add(
        self,
        tenant_id: str,
        *,
        address: str,
        stream: str = ALL_STREAMS,
        reason: str = SuppressionReason.MANUAL,
        expires_at: datetime | None = None,
        actor: str,
        source: str,
    ) -> tuple[Entry, bool]:
        """Add or update an entry; returns (entry, written?)."""
        now = datetime.now(UTC)
        addr, stream, why = self.validate(
            address=address, stream=stream, reason=str(reason), expires_at=expires_at, now=now
        )
        with db.write(self.engine) as conn:
            written = suppress(
                conn,
                tenant_id=tenant_id,
                stream=stream,
                address=addr,
                reason=why,
                source=source,
                actor=actor,
                expires_at=expires_at,
                now=now,
            )
            row = conn.execute(
                sa.select(sup).where(
                    sup.c.tenant_id == tenant_id, sup.c.stream == stream, sup.c.address == addr
                )
            ).one()
        return Entry.from_row(row, now), written

    def remove(self, tenant_id: str, *, stream: str, address: str, actor: str) -> None:
        if stream not in STREAMS:
            raise ValidationFailed(
                [{"field": "stream", "message": f"use one of {', '.join(sorted(STREAMS))}"}]
            )
        with db.write(self.engine) as conn:
            if not unsuppress(conn, tenant_id=tenant_id, stream=stream, address=address, actor=actor):
                raise NotFound(f"no suppression for this address on stream {stream!r}")

    def get(self, tenant_id: str, suppression_id: str) -> Entry:
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(sup).where(sup.c.tenant_id == tenant_id, sup.c.id == suppression_id)
            ).first()
        if row is None:
            raise NotFound(f"suppression {suppression_id} not found")
        return Entry.from_row(row, datetime.now(UTC))

    def _query(self, tenant_id: str, filters: Filters) -> Any:
        q = sa.select(sup).where(sup.c.tenant_id == tenant_id)
        if filters.stream:
            q = q.where(sup.c.stream == filters.stream)
        if filters.reason:
            q = q.where(sup.c.reason == filters.reason)
        if filters.address:
            q = q.where(sup.c.address == normalize(filters.address))
        return q

    def list(
        self, tenant_id: str, *, limit: int = 100, cursor: str | None = None, filters: Filters = Filters()
    ) -> Page[Entry]:
        """Newest first; ``cursor`` is the last id of the previous page."""
        q = self._query(tenant_id, filters)
        if cursor:
            q = q.where(sup.c.id < cursor)
        with db.reader(self.engine) as conn:
            rows = conn.execute(q.order_by(sup.c.id.desc()).limit(limit + 1)).all()
        now = datetime.now(UTC)
        page = rows[:limit]
        return Page(
            tuple(Entry.from_row(r, now) for r in page), page[-1].id if len(rows) > limit and page else None
        )

    def export_csv(self, tenant_id: str, filters: Filters = Filters(), page: int = 1000) -> Iterator[str]:
        """A header line, then one line per entry, read a page at a time.

        Each page is its own short read, so a slow client downloading a large list never
        holds a transaction (or SQLite's WAL) open.
        """
        yield csv_line(CSV_COLUMNS)
        cursor: str | None = None
        while True:
            q = self._query(tenant_id, filters)
            if cursor:
                q = q.where(sup.c.id < cursor)
            with db.reader(self.engine) as conn:
                rows = conn.execute(q.order_by(sup.c.id.desc()).limit(page)).all()
            for r in rows:
                yield csv_line(
                    (
                        r.address,
                        r.stream,
                        r.reason,
                        r.source,
                        r.created_at.isoformat(),
                        r.expires_at.isoformat() if r.expires_at else "",
                        r.message_id or "",
                    )
                )
            if len(rows) < page:
                return
            cursor = rows[-1].id
