"""tlsrpt: TLS reports sent (one per tenant, policy domain, day and endpoint) and received

Revision ID: 0016_tlsrpt
Revises: 0015
Create Date: 2026-12-03 23:40:00

Written in the shape autogenerate gives for ``tlsrpt/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0016_tlsrpt"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tlsrpt_sent",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rua", sa.String(length=500), nullable=False),
        sa.Column("report_id", sa.String(length=200), nullable=False),
        sa.Column("sent_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tlsrpt_sent_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlsrpt_sent")),
        sa.UniqueConstraint("tenant_id", "policy_domain", "day", "rua", name="uq_tlsrpt_sent_once"),
    )
    op.create_table(
        "tlsrpt_received",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("policy_domain", sa.String(length=255), nullable=False),
        sa.Column("organization", sa.String(length=200), nullable=False),
        sa.Column("report_id", sa.String(length=200), nullable=False),
        sa.Column("start_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("end_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("received_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tlsrpt_received_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tlsrpt_received")),
        sa.UniqueConstraint("tenant_id", "organization", "report_id", name="uq_tlsrpt_received_report"),
    )
    with op.batch_alter_table("tlsrpt_received", schema=None) as batch_op:
        batch_op.create_index("ix_tlsrpt_received_tenant_start", ["tenant_id", "start_at"], unique=False)


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
