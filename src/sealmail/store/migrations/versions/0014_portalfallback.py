"""portalfallback: how each portal notice travelled (issue 11 point 1)

Revision ID: 0014_portalfallback
Revises: 0013
Create Date: 2026-12-03 22:40:00

The notice's required TLS level and the TLS facts its delivery achieved, on the
per-recipient hold, so the portal can refuse sign-in factors that crossed a weaker
channel.  Written in the shape autogenerate gives.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_portalfallback"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("portal_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_required_tls", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("notice_tls_version", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("notice_verified_by", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("notice_strength", sa.String(length=10), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
