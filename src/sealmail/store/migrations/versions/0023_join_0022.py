"""Join the branches that grew from 0021 in parallel: delivery-trail keys, confidential
communication preferences, background campaign runs.

Revision ID: 0023
Revises: 0022_trail_keys, 0022_comms_preferences, 0022_marketing_jobs
Create Date: 2026-12-04 11:20:00
"""

from __future__ import annotations

revision = "0023"
down_revision = (
    "0022_trail_keys",
    "0022_comms_preferences",
    "0022_marketing_jobs",
)
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
