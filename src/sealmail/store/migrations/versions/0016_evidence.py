"""evidence: signed audit anchors; per-attempt hashes for the proof of delivery

Revision ID: 0016_evidence
Revises: 0015
Create Date: 2026-12-03 23:30:00

``audit_anchors`` holds each signed chain head (``evidence/anchors.py``).  Two nullable
columns on ``attempts`` record the SHA-256 of the bytes sent in DATA and of the server's
leaf certificate; rows written before this revision have neither, and their proofs say so
(null).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import sealmail.store.tables

revision = "0016_evidence"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_anchors",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sealmail.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_anchors")),
    )
    with op.batch_alter_table("audit_anchors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_anchors_seq"), ["seq"], unique=False)
    with op.batch_alter_table("attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("peer_cert_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
