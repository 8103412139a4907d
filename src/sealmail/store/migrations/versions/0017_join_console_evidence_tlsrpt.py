"""Join the console (0016_console), evidence (0016_evidence) and TLS-RPT (0016_tlsrpt) branches.

Revision ID: 0017
Revises: 0016_console, 0016_evidence, 0016_tlsrpt
Create Date: 2026-12-04 00:20:00
"""

from __future__ import annotations

revision = "0017"
down_revision = ("0016_console", "0016_evidence", "0016_tlsrpt")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
