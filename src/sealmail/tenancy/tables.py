"""Tenancy's own table: the decisions register (issue 14).

Weakening a protective setting (SecureLine, DLP, TLS, retention …) needs a written reason;
the register keeps who changed what, from what to what, and why, next to the audit entry
the same transaction writes (45 CFR 164.316(b): documentation of security decisions).
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import ID, UtcDateTime, metadata

console_decisions = sa.Table(
    "console_decisions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("tenant_id", ID, sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("setting", sa.String(80), nullable=False),  # e.g. "secureline.force_portal"
    sa.Column("before", sa.JSON, nullable=True),
    sa.Column("after", sa.JSON, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_console_decisions_tenant", "tenant_id", "created_at"),
)
