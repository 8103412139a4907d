"""the sender's per-message protection choice and the console's decisions register (issue 14)

Revision ID: 0018_console_ops
Revises: 0017
Create Date: 2026-12-04 02:55:00

Written in the shape autogenerate gives for ``tenancy/tables.py`` and ``messages.protection``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0018_console_ops"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("protection", sa.String(length=10), server_default="auto", nullable=False))
    op.create_table(
        "console_decisions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("setting", sa.String(length=80), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_console_decisions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_decisions")),
    )
    op.create_index(
        "ix_console_decisions_tenant", "console_decisions", ["tenant_id", "created_at"], unique=False
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
