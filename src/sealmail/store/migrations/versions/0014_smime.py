"""smime: what a correspondent's signed mail advertised (SMIMECapabilities) with its certificate

Revision ID: 0014_smime
Revises: 0013
Create Date: 2026-12-03 22:55:00

RFC 8551 §2.7.1.1: AES-GCM (AuthEnvelopedData) and RSA-OAEP are sent only to a recipient
known to support them; ``recipient_keys.capabilities`` holds what was learned
("aes-gcm,rsa-oaep"), NULL when nothing was.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_smime"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recipient_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capabilities", sa.String(length=100), nullable=True))


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
