"""Join the per-recipient notice choice (SMS-only notices), which grew from 0021 beside 0023.

Revision ID: 0024
Revises: 0023, 0022_recipient_notice
Create Date: 2026-12-04 11:45:00
"""

from __future__ import annotations

revision = "0024"
down_revision = ("0023", "0022_recipient_notice")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
