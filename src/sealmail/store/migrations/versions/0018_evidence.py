"""evidence: retention policies, legal holds, purges; the plain-mail register; scheduled,
time-stamped anchors

Revision ID: 0018_evidence
Revises: 0017
Create Date: 2026-12-04 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sealmail.store.tables import UtcDateTime

revision = "0018_evidence"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("content_days", sa.Integer(), nullable=False),
        sa.Column("metadata_days", sa.Integer(), nullable=False),
        sa.Column("audit_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_retention_policies_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_retention_policies")),
    )
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("released_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_legal_holds_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_index("ix_legal_holds_tenant_active", "legal_holds", ["tenant_id", "released_at"], unique=False)
    op.create_table(
        "retention_purges",
        sa.Column("message_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("purged_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("policy_days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "kind", name=op.f("pk_retention_purges")),
    )
    op.create_index(op.f("ix_retention_purges_tenant_id"), "retention_purges", ["tenant_id"], unique=False)
    op.create_table(
        "plain_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("requested_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_plain_requests_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plain_requests")),
    )
    op.create_index(
        "ix_plain_requests_tenant_address", "plain_requests", ["tenant_id", "address"], unique=False
    )
    op.create_table(
        "plain_register",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("evidence", sa.String(length=1000), nullable=True),
        sa.Column("warning_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"], ["plain_requests.id"], name=op.f("fk_plain_register_request_id_plain_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plain_register")),
    )
    op.create_index(op.f("ix_plain_register_request_id"), "plain_register", ["request_id"], unique=False)
    op.create_index("ix_plain_register_tenant_at", "plain_register", ["tenant_id", "at"], unique=False)
    with op.batch_alter_table("audit_anchors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("period", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("timestamp_token", sa.LargeBinary(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_audit_anchors_period"), ["period"])


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
