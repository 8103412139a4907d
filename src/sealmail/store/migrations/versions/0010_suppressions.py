"""suppressions: per-tenant, per-stream addresses not to send to

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-25 11:50:00

A branch parallel to the other features built on 0008; ``store/migrate.upgrade``
upgrades to "heads" until a merge revision joins them.  Written in the shape
autogenerate gives for ``store/tables_suppressions.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("stream", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_suppressions_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint("tenant_id", "address", "stream", name="uq_suppressions_tenant_address_stream"),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.create_index("ix_suppressions_tenant_page", ["tenant_id", "id"], unique=False)


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
