"""standards: REQUIRETLS / TLS-Required on messages (RFC 8689), the TLS-RPT daily run claim

Revision ID: 0018_standards
Revises: 0017
Create Date: 2026-12-04 03:20:00

Written in the shape autogenerate gives for ``store/tables.py`` and ``tlsrpt/tables.py``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0018_standards"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("tls_required", sa.String(length=12), nullable=True))
    op.create_table(
        "tlsrpt_runs",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("claimed_by", sa.String(length=80), nullable=False),
        sa.Column("lease_until", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_tlsrpt_runs")),
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
