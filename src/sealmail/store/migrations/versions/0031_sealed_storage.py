"""messages: PostgreSQL stores sealed content out of line without trying to compress it

A message's content is sealed (AES-256-GCM) before it is stored, and ciphertext does not
compress.  A value over ~2 KB is TOASTed, and with the default ``EXTENDED`` storage PostgreSQL
first runs pglz over it — work that always fails on ciphertext, for every accepted message.
``EXTERNAL`` keeps the out-of-line storage and skips the attempt (issue 18).  Rows stored
before keep their form; nothing is rewritten.  SQLite has no such setting.

Revision ID: 0031_sealed_storage
Revises: 0030_queue_bell
Create Date: 2026-12-05 15:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0031_sealed_storage"
down_revision = "0030_queue_bell"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # A catalog change only: no table rewrite, no long lock.
    op.execute("ALTER TABLE messages ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
