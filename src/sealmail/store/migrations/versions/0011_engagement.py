"""engagement: sealed URLs of click-tracked links

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-25 13:10:00

A branch parallel to the other features built on 0008; ``store/migrate.upgrade``
upgrades to "heads" until a merge revision joins them.  Written in the shape
autogenerate gives for ``store/tables_engagement.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("link_count", sa.Integer(), nullable=False),
        sa.Column("tenant_key_id", sa.String(length=40), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("urls", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_tracked_links_message_id_messages")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tracked_links_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_tracked_links")),
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
