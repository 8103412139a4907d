"""Join the portal fallback (0014_portalfallback), rate limit (0014_ratelimit) and S/MIME
capability (0014_smime) branches.

Revision ID: 0015
Revises: 0014_portalfallback, 0014_ratelimit, 0014_smime
Create Date: 2026-12-03 23:20:00
"""

from __future__ import annotations

revision = "0015"
down_revision = ("0014_portalfallback", "0014_ratelimit", "0014_smime")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
