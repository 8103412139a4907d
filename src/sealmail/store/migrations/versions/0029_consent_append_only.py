"""marketing: the consent ledger (mkt_consent_events) refuses UPDATE and DELETE in the database

The ledger is the evidence of who granted, revoked or authorized what and when (HIPAA
164.508, CAN-SPAM); the code only ever inserts into it.  A trigger makes that a property of
the store too (``sealmail.store.append_only``): a changed or deleted event fails instead of
silently rewriting history.  The current state (``mkt_consent_current``) stays updatable: it
is derived from the ledger.

Revision ID: 0029_consent_append_only
Revises: 0028_import_total
Create Date: 2026-12-05 05:50:00
"""

from __future__ import annotations

from alembic import op

from sealmail.store import append_only

revision = "0029_consent_append_only"
down_revision = "0028_import_total"
branch_labels = None
depends_on = None


def upgrade() -> None:
    append_only.create(op.get_bind(), "mkt_consent_events")


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
