"""evidence: a per-request order for plain-register steps; scheduled anchors mailed to each
tenant's compliance officer(s)

Revision ID: 0020_evidence2
Revises: 0019
Create Date: 2026-12-04 04:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0020_evidence2"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("plain_register", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), server_default="0", nullable=False))
    # Existing steps: a request's lifecycle is linear (each step at most once), so its kind
    # gives its place.
    op.execute(
        "UPDATE plain_register SET seq = CASE kind WHEN 'requested' THEN 1 WHEN 'warned' THEN 2 "
        "WHEN 'confirmed' THEN 3 ELSE 4 END"
    )
    with op.batch_alter_table("plain_register", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_plain_register_request_seq", ["request_id", "seq"])
    op.create_table(
        "evidence_settings",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("anchor_recipients", sa.String(length=1000), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_evidence_settings")),
    )
    op.create_table(
        "anchor_mailings",
        sa.Column("anchor_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("message_id", sa.String(length=40), nullable=True),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("anchor_id", "tenant_id", "address", name=op.f("pk_anchor_mailings")),
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
