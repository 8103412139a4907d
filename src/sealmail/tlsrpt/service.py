"""TLS reporting use cases: a day's TLS outcomes per (tenant, policy domain), what was sent,
and the reports other MTAs sent about the tenant's own domains.

The attempts table already records each delivery's TLS facts (version, verified_by, the
failure reason and detail, the MX); a report is a count over one UTC day of those rows
(RFC 8460 §4.1: a report covers whole days).  Counts are per attempt, which is per
session-and-recipient group: the transport opens one session per attempt group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.outcomes import AttemptStatus
from sealmail.errors import NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.store import db
from sealmail.store.tables import attempts, recipients, sender_domains, tenants
from sealmail.tlsrpt.report import TLS_FAILURE_REASONS, day_range, result_type
from sealmail.tlsrpt.tables import tlsrpt_received, tlsrpt_sent


@dataclass
class DomainDay:
    """What one tenant's deliveries to one domain met on one day."""

    tenant_id: str
    domain: str
    successes: int = 0
    dane_verified: bool = False
    tlsa_failure: bool = False
    # A failure at a hop an MTA-STS enforce policy made verify (the attempt's verified_by).
    sts_failure: bool = False
    # (result-type, receiving-mx-hostname, receiving-ip) -> failures
    failures: dict[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Submitter:
    """Who a tenant's reports come from: its name and a verified domain (which signs)."""

    organization: str
    domain: str


class TlsReports:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- sending ---------------------------------------------------------------------------
    def day(self, day: date) -> list[DomainDay]:
        """Every (tenant, domain) that had a TLS success or TLS failure on ``day`` (UTC)."""
        start, end = day_range(day)
        query = (
            sa.select(
                attempts.c.tenant_id,
                recipients.c.domain,
                attempts.c.status,
                attempts.c.reason,
                attempts.c.detail,
                attempts.c.mx_host,
                attempts.c.mx_ip,
                attempts.c.tls_version,
                attempts.c.verified_by,
            )
            .join(recipients, recipients.c.id == attempts.c.recipient_id)
            .where(attempts.c.finished_at >= start, attempts.c.finished_at < end)
        )
        found: dict[tuple[str, str], DomainDay] = {}
        with db.reader(self.engine) as conn:
            for row in conn.execute(query):
                entry = found.get((row.tenant_id, row.domain)) or DomainDay(row.tenant_id, row.domain)
                if row.status == AttemptStatus.DELIVERED and row.tls_version:
                    entry.successes += 1
                    entry.dane_verified |= row.verified_by == "dane"
                elif row.reason in TLS_FAILURE_REASONS:
                    kind = result_type(row.detail)
                    tlsa_kinds = ("tlsa-invalid", "dane-required", "dnssec-invalid")
                    entry.tlsa_failure |= kind in tlsa_kinds or row.verified_by == "dane"
                    entry.sts_failure |= row.verified_by == "mta-sts"
                    key = (kind, row.mx_host or "", row.mx_ip or "")
                    entry.failures[key] = entry.failures.get(key, 0) + 1
                else:
                    continue  # neither a TLS session nor a TLS failure (RFC 8460 §4.3)
                found[(row.tenant_id, row.domain)] = entry
        return sorted(found.values(), key=lambda d: (d.tenant_id, d.domain))

    def submitter(self, tenant_id: str) -> Submitter | None:
        """The tenant's name and its first verified domain; None when it has none (unsigned
        reports would be discarded, RFC 8460 §5.3)."""
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(tenants.c.name, sender_domains.c.name.label("domain"))
                .join(sender_domains, sender_domains.c.tenant_id == tenants.c.id)
                .where(tenants.c.id == tenant_id, sender_domains.c.verified_at.is_not(None))
                .order_by(sender_domains.c.verified_at, sender_domains.c.name)
                .limit(1)
            ).first()
        return Submitter(row.name, row.domain) if row is not None else None

    def was_sent(self, tenant_id: str, domain: str, day: date, rua: str) -> bool:
        with db.reader(self.engine) as conn:
            return (
                conn.execute(
                    sa.select(tlsrpt_sent.c.id).where(
                        tlsrpt_sent.c.tenant_id == tenant_id,
                        tlsrpt_sent.c.policy_domain == domain,
                        tlsrpt_sent.c.day == day,
                        tlsrpt_sent.c.rua == rua,
                    )
                ).first()
                is not None
            )

    def mark_sent(self, tenant_id: str, domain: str, day: date, rua: str, report_id: str) -> None:
        now = datetime.now(UTC)
        with db.write(self.engine) as conn:
            conn.execute(
                sa.insert(tlsrpt_sent).values(
                    id=new_id("trs"),
                    tenant_id=tenant_id,
                    policy_domain=domain,
                    day=day,
                    rua=rua[:500],
                    report_id=report_id,
                    sent_at=now,
                )
            )
            audit.append(
                conn,
                action=AuditAction.TLSRPT_SENT,
                actor="system:tlsrpt",
                tenant_id=tenant_id,
                target=domain,
                details={"day": day.isoformat(), "report_id": report_id, "scheme": rua.split(":", 1)[0]},
            )

    # -- receiving -------------------------------------------------------------------------
    def _owned(self, tenant_id: str, names: Sequence[str]) -> bool:
        with db.reader(self.engine) as conn:
            verified = {
                r.name.lower()
                for r in conn.execute(
                    sa.select(sender_domains.c.name).where(
                        sender_domains.c.tenant_id == tenant_id, sender_domains.c.verified_at.is_not(None)
                    )
                )
            }
        return all(any(n == d or n.endswith("." + d) for d in verified) for n in names)

    def receive(self, tenant_id: str, report: dict[str, Any], *, actor: str) -> ReceivedReport:
        """Store a report (already checked by ``report.parse_received``) about the tenant's
        own verified domains; the same organization's report id twice is one report."""
        domains = [str(p["policy"]["policy-domain"]).lower().rstrip(".") for p in report["policies"]]
        if not domains or not self._owned(tenant_id, domains):
            raise ValidationFailed(
                [
                    {
                        "field": "policies",
                        "message": "every policy-domain must be a verified domain of the tenant",
                    }
                ]
            )
        dates = report["date-range"]
        row = {
            "id": new_id("trr"),
            "tenant_id": tenant_id,
            "policy_domain": domains[0],
            "organization": str(report["organization-name"])[:200],
            "report_id": str(report["report-id"])[:200],
            "start_at": datetime.fromisoformat(dates["start-datetime"].replace("Z", "+00:00")),
            "end_at": datetime.fromisoformat(dates["end-datetime"].replace("Z", "+00:00")),
            "successes": sum(p["summary"]["total-successful-session-count"] for p in report["policies"]),
            "failures": sum(p["summary"]["total-failure-session-count"] for p in report["policies"]),
            "report": report,
            "received_at": datetime.now(UTC),
        }
        with db.write(self.engine) as conn:
            existing = conn.execute(
                sa.select(tlsrpt_received).where(
                    tlsrpt_received.c.tenant_id == tenant_id,
                    tlsrpt_received.c.organization == row["organization"],
                    tlsrpt_received.c.report_id == row["report_id"],
                )
            ).first()
            if existing is not None:
                return ReceivedReport.from_row(existing._asdict())
            conn.execute(sa.insert(tlsrpt_received).values(**row))
            audit.append(
                conn,
                action=AuditAction.TLSRPT_RECEIVED,
                actor=actor,
                tenant_id=tenant_id,
                target=row["id"],
                details={"organization": row["organization"], "domain": row["policy_domain"]},
            )
        return ReceivedReport.from_row(row)

    def received(self, tenant_id: str, *, limit: int = 100) -> list[ReceivedReport]:
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(tlsrpt_received)
                .where(tlsrpt_received.c.tenant_id == tenant_id)
                .order_by(tlsrpt_received.c.start_at.desc(), tlsrpt_received.c.id)
                .limit(limit)
            )
            return [ReceivedReport.from_row(r._asdict()) for r in rows]

    def received_one(self, tenant_id: str, report_id: str) -> ReceivedReport:
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(tlsrpt_received).where(
                    tlsrpt_received.c.tenant_id == tenant_id, tlsrpt_received.c.id == report_id
                )
            ).first()
        if row is None:
            raise NotFound("no such TLS report")
        return ReceivedReport.from_row(row._asdict())


@dataclass(frozen=True, slots=True)
class ReceivedReport:
    """A TLS report received about one of the tenant's domains."""

    id: str
    policy_domain: str  # the (first) policy domain it is about
    organization: str
    report_id: str
    start_at: datetime
    end_at: datetime
    successes: int
    failures: int
    report: dict[str, Any]  # the RFC 8460 JSON as received (a wire format)
    received_at: datetime

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ReceivedReport:
        stored = {f.name: row[f.name] for f in fields(cls)}
        for key in ("start_at", "end_at", "received_at"):
            value = stored[key]
            stored[key] = value if value.tzinfo else value.replace(tzinfo=UTC)
        return cls(**stored)
