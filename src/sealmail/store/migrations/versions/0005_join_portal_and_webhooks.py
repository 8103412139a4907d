"""Join the portal (0003) and webhooks (0004) branches.

Revision ID: 0005
Revises: 0003, 0004
Create Date: 2026-11-25 09:53:17
"""

from __future__ import annotations

revision = "0005"
down_revision = ("0003", "0004")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
