"""Delivery reports per tenant and period: what was sent, what became of it, how it was secured.

One row per (status, method, TLS version, what vouched for the certificate) with a count
of recipients, for messages accepted in ``[since, until)``.  ``secured_by`` puts the
method in an auditor's words.  Cells are plain tokens Sealmail wrote (no addresses, no
content), so there is nothing for a spreadsheet to run.  After the rows, the ``sent`` total and
``opened``: the recipients of those messages who opened them — read in the portal, or a
tracked open by a person (an open the engagement classifier marked ``machine_open``, a
scanner or a proxy's prefetch, is not one), each counted once however often they opened.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail.domain.outcomes import AttemptStatus
from sealmail.domain.spreadsheet import csv_table
from sealmail.evidence.pdf import text_pdf
from sealmail.store import db
from sealmail.store.events import EventType, by_a_person
from sealmail.store.tables import attempts, events, messages, recipients

HEADER = ("status", "method", "secured_by", "tls_version", "verified_by", "recipients")
# Recipient states gathered under the four headings auditors ask for.
STATUS_GROUP = {
    "delivered": "delivered",
    "deferred": "deferred",
    "queued": "queued",
    "delivering": "queued",
    "bounced": "bounced",
    "expired": "bounced",
    "failed": "bounced",
}


@dataclass(frozen=True, slots=True)
class Period:
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """Narrow a message report: the From address, a recipient domain, a stream, a campaign (tag)."""

    sender: str | None = None
    recipient_domain: str | None = None
    stream: str | None = None
    campaign: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("sender", self.sender),
                ("recipient_domain", self.recipient_domain),
                ("stream", self.stream),
                ("campaign", self.campaign),
            )
            if v
        }


def secured_by(method: str | None, tls_version: str | None, verified_by: str | None) -> str:
    if method == "pgp":
        return "OpenPGP"
    if method == "smime":
        return "S/MIME"
    if method == "portal":
        return "secure portal"
    if method == "plain":
        # 164.524(c)(2): the patient asked for unencrypted mail, was warned and confirmed.
        return f"patient-requested plain ({tls_version or 'no TLS'})"
    if method == "tls":
        if not tls_version:
            return "plaintext"
        if verified_by and verified_by != "none":
            return f"verified TLS ({tls_version}, {verified_by})"
        return f"TLS, certificate not verified ({tls_version})"
    return "not sent"


def delivery_rows(
    engine: Engine, tenant_id: str, period: Period, f: ReportFilter | None = None
) -> list[tuple[str, ...]]:
    f = f or ReportFilter()
    delivered = (
        sa.select(attempts.c.recipient_id, attempts.c.tls_version, attempts.c.verified_by)
        .where(attempts.c.tenant_id == tenant_id, attempts.c.status == AttemptStatus.DELIVERED)
        .subquery()
    )
    query = (
        sa.select(
            recipients.c.id,
            recipients.c.status,
            recipients.c.method,
            delivered.c.tls_version,
            delivered.c.verified_by,
            messages.c.tags,
        )
        .join(messages, messages.c.id == recipients.c.message_id)
        .outerjoin(delivered, delivered.c.recipient_id == recipients.c.id)
        .where(*_accepted_in(recipients.c.tenant_id, tenant_id, period))
    )
    if f.sender:
        query = query.where(sa.func.lower(messages.c.header_from) == f.sender.lower())
    if f.stream:
        query = query.where(messages.c.stream == f.stream)
    if f.recipient_domain:
        query = query.where(recipients.c.domain == f.recipient_domain.lower())
    counts: Counter[tuple[str, str, str, str, str]] = Counter()
    counted: set[str] = set()
    with db.reader(engine) as conn:
        for rid, status, method, version, by, tags in conn.execute(query):
            if f.campaign and not (isinstance(tags, list) and f.campaign in tags):
                continue
            counted.add(rid)
            group = STATUS_GROUP.get(status, status)
            counts[(group, method or "", secured_by(method, version, by), version or "", by or "")] += 1
        opened = _opened(conn, tenant_id, period) & counted
    rows: list[tuple[str, ...]] = [(*key, str(n)) for key, n in sorted(counts.items())]
    total = sum(counts.values())
    rows.append(("sent", "", "", "", "", str(total)))
    rows.append(("opened", "", "", "", "", str(len(opened))))
    return rows


def _accepted_in(
    joined_tenant: sa.ColumnElement[str], tenant_id: str, period: Period
) -> tuple[sa.ColumnElement[bool], ...]:
    """Rows joined to the tenant's messages accepted in the period (both sides tenant-scoped)."""
    return (
        joined_tenant == tenant_id,
        messages.c.tenant_id == tenant_id,
        messages.c.created_at >= period.since,
        messages.c.created_at < period.until,
    )


def _opened(conn: sa.Connection, tenant_id: str, period: Period) -> set[str]:
    """Recipients of the period's messages who read them in the portal or opened them (people only)."""
    person = by_a_person()
    query = (
        sa.select(events.c.recipient_id)
        .distinct()
        .join(messages, messages.c.id == events.c.message_id)
        .where(
            *_accepted_in(events.c.tenant_id, tenant_id, period),
            events.c.recipient_id.is_not(None),
            sa.or_(
                events.c.type == EventType.PORTAL_VIEWED,
                sa.and_(events.c.type == EventType.OPENED, person),
            ),
        )
    )
    return {str(r) for r in conn.execute(query).scalars()}


def delivery_csv(engine: Engine, tenant_id: str, period: Period) -> str:
    # RFC 4180 lines; cells safe to open in a spreadsheet (verified_by, tls_version came from a peer).
    return csv_table(HEADER, delivery_rows(engine, tenant_id, period))


def delivery_pdf(engine: Engine, tenant_id: str, period: Period) -> bytes:
    """The same table as ``delivery_csv``, laid out in columns on PDF pages."""
    rows = [HEADER, *delivery_rows(engine, tenant_id, period)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    title = (
        f"Sealmail delivery report - tenant {tenant_id} - "
        f"{period.since.isoformat(timespec='seconds')} to {period.until.isoformat(timespec='seconds')}"
    )
    return text_pdf(title, lines)
