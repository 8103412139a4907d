"""bounces: evidence of inbound DSN and ARF reports matched to recipients

Revision ID: 0012
Revises: 0008
Create Date: 2026-11-25 12:30:00

A branch parallel to the other features built on 0008; ``store/migrate.upgrade``
upgrades to "heads" until a merge revision joins them.  Written in the shape
autogenerate gives for ``store/tables_bounces.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0012"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback_reports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("recipient_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=True),
        sa.Column("classification", sa.String(length=40), nullable=True),
        sa.Column("diagnostic", sa.String(length=500), nullable=True),
        sa.Column("remote_mta", sa.String(length=255), nullable=True),
        sa.Column("reporting_mta", sa.String(length=255), nullable=True),
        sa.Column("heuristic", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("received_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_feedback_reports_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_reports")),
        sa.UniqueConstraint("recipient_id", "fingerprint", name="uq_feedback_reports_recipient_fingerprint"),
    )
    with op.batch_alter_table("feedback_reports", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_reports_tenant_message", ["tenant_id", "message_id"], unique=False)


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
