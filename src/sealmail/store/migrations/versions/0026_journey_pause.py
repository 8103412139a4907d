"""marketing: a journey can be paused (by a user, the complaint breaker, or a failed check)

Revision ID: 0026_journey_pause
Revises: 0025_scheduled_runs
Create Date: 2026-12-04 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0026_journey_pause"
down_revision = "0025_scheduled_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mkt_journeys") as batch:
        batch.add_column(sa.Column("paused_reason", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("paused_at", UtcDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resumed_at", UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
