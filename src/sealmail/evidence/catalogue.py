"""The reports an auditor asks for, each a table over one tenant and one period.

* ``delivery`` — counts by outcome and how each recipient was secured (``reports.py``);
* ``secured`` — one row per recipient: method (OpenPGP, S/MIME, verified TLS with version,
  portal, patient-requested plain), its reason, TLS facts, outcome;
* ``access`` — who read what content, when (API reads, portal views and downloads, files);
* ``logins`` — console, portal, API-key and SMTP sign-ins, failures and lock-outs;
* ``dlp`` — DLP findings per message (detectors and places, never the matched values);
* ``quarantine`` — DLP quarantines, releases and blocks;
* ``retention`` — policy, legal holds, what was destroyed (``retention_report.py``);
* ``plain_register`` — every plain-mail request, warning, confirmation, revocation (``plain.py``).
* ``comms_preferences`` — every confidential-communication preference recorded or revoked
  (164.522(b), ``preferences.py``).

Message reports filter by sender, recipient domain, stream and campaign (a tag); the
audit-based ones by nothing but the period (an entry names no stream).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail.audit import AuditAction
from sealmail.domain.statuses import RecipientStatus
from sealmail.evidence.plain import PlainRegister
from sealmail.evidence.preferences import PreferenceRegister
from sealmail.evidence.reports import HEADER as DELIVERY_HEADER
from sealmail.evidence.reports import Period, ReportFilter, delivery_rows, secured_by
from sealmail.evidence.retention_report import HEADER as RETENTION_HEADER
from sealmail.evidence.retention_report import retention_rows
from sealmail.store import db
from sealmail.store.tables import attempts, audit_log, messages, recipients

Rows = list[tuple[str, ...]]

ACCESS = (
    AuditAction.MESSAGE_CONTENT_READ,
    AuditAction.PORTAL_VIEWED,
    AuditAction.PORTAL_ATTACHMENT_DOWNLOADED,
    AuditAction.FILE_DOWNLOADED,
    AuditAction.ARCHIVE_KEY_EXPORTED,
    AuditAction.PROOF_ISSUED,
)
LOGINS = (
    AuditAction.USER_SIGNED_IN,
    AuditAction.USER_SIGNIN_FAILED,
    AuditAction.USER_LOCKED,
    AuditAction.USER_SIGNED_OUT,
    AuditAction.USER_RECOVERY_CODE_USED,
    AuditAction.PORTAL_SIGNED_IN,
    AuditAction.PORTAL_SIGN_IN_FAILED,
    AuditAction.PORTAL_LOCKED_OUT,
    AuditAction.API_KEY_REJECTED,
    AuditAction.SMTP_AUTH_FAILED,
)
QUARANTINE = (AuditAction.MESSAGE_QUARANTINED, AuditAction.MESSAGE_RELEASED, AuditAction.MESSAGE_BLOCKED)
AUDIT_HEADER = ("at", "actor", "action", "target", "details", "audit_seq")
SECURED_HEADER = (
    "accepted_at",
    "message_id",
    "recipient_id",
    "sender",
    "recipient_domain",
    "stream",
    "status",
    "method",
    "secured_by",
    "reason",
    "tls_version",
    "tls_cipher",
    "verified_by",
)
DLP_HEADER = ("accepted_at", "message_id", "sender", "stream", "dlp_action", "findings")


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    header: Sequence[str]
    rows: Callable[[Engine, str, Period, ReportFilter], Rows]
    needs_period: bool = True


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _message_where(tenant_id: str, period: Period, f: ReportFilter) -> list[sa.ColumnElement[bool]]:
    where = [
        messages.c.tenant_id == tenant_id,
        messages.c.created_at >= period.since,
        messages.c.created_at < period.until,
    ]
    if f.sender:
        where.append(sa.func.lower(messages.c.header_from) == f.sender.lower())
    if f.stream:
        where.append(messages.c.stream == f.stream)
    return where


def _campaign(f: ReportFilter, tags: Any) -> bool:
    return not f.campaign or (isinstance(tags, list) and f.campaign in tags)


def secured_rows(engine: Engine, tenant_id: str, period: Period, f: ReportFilter) -> Rows:
    last = (
        sa.select(
            attempts.c.recipient_id,
            attempts.c.tls_version,
            attempts.c.tls_cipher,
            attempts.c.verified_by,
            sa.func.row_number()
            .over(partition_by=attempts.c.recipient_id, order_by=attempts.c.finished_at.desc())
            .label("n"),
        )
        .where(attempts.c.tenant_id == tenant_id)
        .subquery()
    )
    query = (
        sa.select(
            messages.c.created_at,
            messages.c.id,
            messages.c.header_from,
            messages.c.stream,
            messages.c.tags,
            recipients.c.id.label("rid"),
            recipients.c.domain,
            recipients.c.status,
            recipients.c.method,
            recipients.c.method_reason,
            last.c.tls_version,
            last.c.tls_cipher,
            last.c.verified_by,
        )
        .join(recipients, recipients.c.message_id == messages.c.id)
        .outerjoin(last, sa.and_(last.c.recipient_id == recipients.c.id, last.c.n == 1))
        .where(recipients.c.tenant_id == tenant_id, *_message_where(tenant_id, period, f))
        .order_by(messages.c.created_at, recipients.c.id)
    )
    if f.recipient_domain:
        query = query.where(recipients.c.domain == f.recipient_domain.lower())
    rows: Rows = []
    with db.reader(engine) as conn:
        for r in conn.execute(query):
            if not _campaign(f, r.tags):
                continue
            delivered = r.status == RecipientStatus.DELIVERED
            version = r.tls_version if delivered else None
            rows.append(
                (
                    _stamp(r.created_at),
                    r.id,
                    r.rid,
                    r.header_from,
                    r.domain,
                    r.stream,
                    r.status,
                    r.method or "",
                    secured_by(r.method, version, r.verified_by if delivered else None)
                    if delivered
                    else "not sent",
                    r.method_reason or "",
                    r.tls_version or "",
                    r.tls_cipher or "",
                    r.verified_by or "",
                )
            )
    return rows


def dlp_rows(engine: Engine, tenant_id: str, period: Period, f: ReportFilter) -> Rows:
    query = (
        sa.select(
            messages.c.created_at,
            messages.c.id,
            messages.c.header_from,
            messages.c.stream,
            messages.c.tags,
            messages.c.dlp_action,
            messages.c.dlp_findings,
        )
        .where(*_message_where(tenant_id, period, f), messages.c.dlp_findings.is_not(None))
        .order_by(messages.c.created_at)
    )
    if f.recipient_domain:
        query = query.where(
            sa.exists().where(
                recipients.c.message_id == messages.c.id, recipients.c.domain == f.recipient_domain.lower()
            )
        )
    rows: Rows = []
    with db.reader(engine) as conn:
        for r in conn.execute(query):
            findings = r.dlp_findings or []
            if not findings or not _campaign(f, r.tags):
                continue
            where = "; ".join(
                f"{x.get('detector')} in {x.get('location')}" for x in findings if isinstance(x, dict)
            )
            rows.append((_stamp(r.created_at), r.id, r.header_from, r.stream, r.dlp_action, where))
    return rows


def _audit_rows(actions: Sequence[AuditAction]) -> Callable[[Engine, str, Period, ReportFilter], Rows]:
    names = [str(a) for a in actions]

    def rows(engine: Engine, tenant_id: str, period: Period, _f: ReportFilter) -> Rows:
        query = (
            sa.select(audit_log)
            .where(
                audit_log.c.tenant_id == tenant_id,
                audit_log.c.action.in_(names),
                audit_log.c.at >= period.since,
                audit_log.c.at < period.until,
            )
            .order_by(audit_log.c.seq)
        )
        with db.reader(engine) as conn:
            return [
                (
                    _stamp(r.at),
                    r.actor,
                    r.action,
                    r.target or "",
                    "; ".join(f"{k}={v}" for k, v in sorted((r.details or {}).items())),
                    str(r.seq),
                )
                for r in conn.execute(query)
            ]

    return rows


PLAIN_HEADER = ("at", "request_id", "address", "step", "via", "actor", "warning_sha256", "evidence")


def _plain(engine: Engine, tenant_id: str, period: Period, _f: ReportFilter) -> Rows:
    return PlainRegister(engine).register_rows(tenant_id, period.since, period.until)


PREFERENCE_HEADER = (
    "at",
    "preference_id",
    "address",
    "preference",
    "alternative",
    "step",
    "via",
    "actor",
    "evidence",
)


def _preferences(engine: Engine, tenant_id: str, period: Period, _f: ReportFilter) -> Rows:
    return PreferenceRegister(engine).register_rows(tenant_id, period.since, period.until)


def _retention(engine: Engine, tenant_id: str, _period: Period, _f: ReportFilter) -> Rows:
    return retention_rows(engine, tenant_id)


REPORTS: dict[str, Report] = {
    "delivery": Report("Delivery report", DELIVERY_HEADER, delivery_rows),
    "secured": Report("How each recipient was secured", SECURED_HEADER, secured_rows),
    "access": Report("Access report (who read what content)", AUDIT_HEADER, _audit_rows(ACCESS)),
    "logins": Report("Log-in report", AUDIT_HEADER, _audit_rows(LOGINS)),
    "dlp": Report("DLP findings", DLP_HEADER, dlp_rows),
    "quarantine": Report("Quarantine decisions", AUDIT_HEADER, _audit_rows(QUARANTINE)),
    "retention": Report("Retention report", RETENTION_HEADER, _retention, needs_period=False),
    "plain_register": Report("Unencrypted-by-request register (164.524)", PLAIN_HEADER, _plain),
    "comms_preferences": Report(
        "Confidential-communication preferences (164.522(b))", PREFERENCE_HEADER, _preferences
    ),
}
