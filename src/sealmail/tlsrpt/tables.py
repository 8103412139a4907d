"""Tables of TLS reporting (RFC 8460).

``tlsrpt_sent``: one row per (tenant, policy domain, day, destination URI) report delivered,
so a rerun of the daily job sends nothing twice.  ``tlsrpt_runs``: one row per UTC day the
worker's scheduler claimed, so exactly one process on one host runs the day's job (a claim
whose lease ran out without ``finished_at`` is taken over).  ``tlsrpt_received``: reports other MTAs
sent about the tenant's own domains, kept whole (they hold counts and MX names, no content).
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

tlsrpt_sent = sa.Table(
    "tlsrpt_sent",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("policy_domain", sa.String(255), nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("rua", sa.String(500), nullable=False),
    sa.Column("report_id", sa.String(200), nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "policy_domain", "day", "rua", name="uq_tlsrpt_sent_once"),
)

tlsrpt_received = sa.Table(
    "tlsrpt_received",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("policy_domain", sa.String(255), nullable=False),
    sa.Column("organization", sa.String(200), nullable=False),
    sa.Column("report_id", sa.String(200), nullable=False),
    sa.Column("start_at", UtcDateTime, nullable=False),
    sa.Column("end_at", UtcDateTime, nullable=False),
    sa.Column("successes", sa.Integer, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "organization", "report_id", name="uq_tlsrpt_received_report"),
    sa.Index("ix_tlsrpt_received_tenant_start", "tenant_id", "start_at"),
)

tlsrpt_runs = sa.Table(
    "tlsrpt_runs",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("claimed_by", sa.String(80), nullable=False),
    sa.Column("lease_until", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("sent", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
)
