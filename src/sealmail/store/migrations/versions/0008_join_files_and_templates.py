"""Join the files (0006) and templates (0007) branches.

Revision ID: 0008
Revises: 0006, 0007
Create Date: 2026-11-25 10:45:00
"""

from __future__ import annotations

revision = "0008"
down_revision = ("0006", "0007")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
