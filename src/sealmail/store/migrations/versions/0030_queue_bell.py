"""queue: PostgreSQL rings a bell (NOTIFY sealmail_queue) whenever recipients are queued

An idle delivery worker polls ever more slowly (up to 8 × ``worker_poll_seconds``, 1.6 s by
default), so mail queued after a quiet spell waited up to that long for its first claim.  A
statement-level trigger on ``recipients`` notifies every listening worker at the commit of
any transaction that queues mail — whichever path queued it (API, SMTP, bulk, campaigns,
journeys, DSNs) — and the worker claims at once (``delivery/bell.py``).  SQLite needs no
trigger: its workers watch the table's largest rowid.

Revision ID: 0030_queue_bell
Revises: 0029_consent_append_only
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0030_queue_bell"
down_revision = "0029_consent_append_only"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION sealmail_queue_bell() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('sealmail_queue', ''); RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER recipients_queue_bell AFTER INSERT ON recipients "
        "FOR EACH STATEMENT EXECUTE FUNCTION sealmail_queue_bell()"
    )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
