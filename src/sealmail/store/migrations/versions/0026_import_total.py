"""marketing: mkt_imports.total, the rows a background import expects (its progress bar)

Revision ID: 0026_import_total
Revises: 0025_scheduled_runs
Create Date: 2026-12-04 22:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026_import_total"
down_revision = "0025_scheduled_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: imports made before (and synchronous ones until they finish) have no estimate.
    with op.batch_alter_table("mkt_imports") as batch:
        batch.add_column(sa.Column("total", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
