"""evidence: monthly activity-review sign-offs (164.308(a)(1)(ii)(D))

Revision ID: 0021_evidence3
Revises: 0020_evidence2
Create Date: 2026-12-04 04:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0021_evidence3"
down_revision = "0020_evidence2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_reviews",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("signed_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("signed_by", sa.String(length=80), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("items_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "month", name=op.f("pk_activity_reviews")),
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
