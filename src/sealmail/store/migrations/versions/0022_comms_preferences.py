"""evidence: the confidential-communication preferences register (164.522(b))

Revision ID: 0022_comms_preferences
Revises: 0021_evidence3
Create Date: 2026-12-04 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0022_comms_preferences"
down_revision = "0021_evidence3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comms_preferences",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("alternative", sa.String(length=320), nullable=True),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("recorded_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_comms_preferences_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comms_preferences")),
    )
    op.create_index(
        "ix_comms_preferences_tenant_address", "comms_preferences", ["tenant_id", "address"], unique=False
    )
    op.create_table(
        "comms_preference_register",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("preference_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("evidence", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(
            ["preference_id"],
            ["comms_preferences.id"],
            name=op.f("fk_comms_preference_register_preference_id_comms_preferences"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comms_preference_register")),
    )
    op.create_index(
        op.f("ix_comms_preference_register_preference_id"),
        "comms_preference_register",
        ["preference_id"],
        unique=False,
    )
    op.create_index(
        "ix_comms_preference_register_tenant_at",
        "comms_preference_register",
        ["tenant_id", "at"],
        unique=False,
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
