"""Join the site secrets (0009), suppressions (0010), engagement (0011) and bounces (0012) branches.

Revision ID: 0013
Revises: 0009, 0010, 0011, 0012
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

revision = "0013"
down_revision = ("0009", "0010", "0011", "0012")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
