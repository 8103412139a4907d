"""marketing: the consent ledger (mkt_consent_events) refuses UPDATE and DELETE in the database

The ledger is the evidence of who granted, revoked or authorized what and when (HIPAA
164.508, CAN-SPAM); the code only ever inserts into it.  A trigger makes that a property of
the store too: a changed or deleted event (a bug, a hand-run statement, a compromised
process using the application's role) fails instead of silently rewriting history.  The
current state (``mkt_consent_current``) stays updatable: it is derived from the ledger.

Revision ID: 0029_consent_append_only
Revises: 0028_import_total
Create Date: 2026-12-05 05:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0029_consent_append_only"
down_revision = "0028_import_total"
branch_labels = None
depends_on = None

MESSAGE = "mkt_consent_events is append-only: record a new event instead"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION mkt_consent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        op.execute(
            "CREATE TRIGGER mkt_consent_events_append_only BEFORE UPDATE OR DELETE ON mkt_consent_events "
            "FOR EACH ROW EXECUTE FUNCTION mkt_consent_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER mkt_consent_events_no_truncate BEFORE TRUNCATE ON mkt_consent_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION mkt_consent_events_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER mkt_consent_events_no_{event.lower()} BEFORE {event} ON mkt_consent_events "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
