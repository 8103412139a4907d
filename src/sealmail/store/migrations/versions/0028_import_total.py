"""marketing: mkt_imports.total, the rows a background import expects (its progress bar), and
progress_at, when its last chunk was committed (an import that stopped moving was interrupted)

Revision ID: 0028_import_total
Revises: 0027_keydir_generation
Create Date: 2026-12-04 22:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0028_import_total"
down_revision = "0027_keydir_generation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: imports made before (and synchronous ones until they finish) have no estimate.
    with op.batch_alter_table("mkt_imports") as batch:
        batch.add_column(sa.Column("total", sa.Integer(), nullable=True))
        # When the last chunk was committed: an import that stopped moving was interrupted.
        batch.add_column(sa.Column("progress_at", UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
