"""recipients: the per-recipient portal notice channel (email | sms | both; NULL = the contact's)

Revision ID: 0022_recipient_notice
Revises: 0021_evidence3
Create Date: 2026-12-04 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_recipient_notice"
down_revision = "0021_evidence3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        batch.add_column(sa.Column("notice", sa.String(length=5), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
