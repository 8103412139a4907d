"""delivery trail: the recipient key each attempt encrypted to, and where it came from

Revision ID: 0022_trail_keys
Revises: 0021_evidence3
Create Date: 2026-12-04 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_trail_keys"
down_revision = "0021_evidence3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(sa.Column("key_fingerprint", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("key_source", sa.String(length=20), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
