"""marketing: background campaign expansion, wait-until events, journey node analytics

Revision ID: 0022_marketing_jobs
Revises: 0021_evidence3
Create Date: 2026-12-04 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0022_marketing_jobs"
down_revision = "0021_evidence3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mkt_campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_by", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("lease_until", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("expand_cursor", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("expanded_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("failed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resumed_at", UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_mkt_campaigns_status", ["status"], unique=False)
    with op.batch_alter_table("mkt_sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("journey_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("step", sa.Integer(), nullable=True))
        batch_op.create_index("ix_mkt_sends_journey_step", ["journey_id", "step"], unique=False)
    with op.batch_alter_table("mkt_enrollments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("awaiting", sa.String(length=160), nullable=True))
        batch_op.create_index("ix_mkt_enrollments_awaiting", ["awaiting"], unique=False)


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
