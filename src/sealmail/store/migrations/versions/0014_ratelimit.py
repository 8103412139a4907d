"""rate_limits: fixed-window counters shared by every API process

Revision ID: 0014_ratelimit
Revises: 0013
Create Date: 2026-12-03 22:50:00

Written in the shape autogenerate gives for ``store/tables_ratelimit.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_ratelimit"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_rate_limits")),
    )
    with op.batch_alter_table("rate_limits", schema=None) as batch_op:
        batch_op.create_index("ix_rate_limits_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
