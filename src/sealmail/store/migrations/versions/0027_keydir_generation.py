"""secureline: keydir_generation, a counter every change to recipient_keys bumps

The delivery worker keeps the key directory's rows in memory and trusts them only while
the counter it read in its latest claim is the one they were read under: a key added,
changed or deleted by any process (API, discovery, another worker) bumps the counter in
the same transaction, through a trigger, so no writer can forget to.

Revision ID: 0027_keydir_generation
Revises: 0026_journey_pause
Create Date: 2026-12-04 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027_keydir_generation"
down_revision = "0026_journey_pause"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keydir_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_keydir_generation_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keydir_generation")),
    )
    op.execute("INSERT INTO keydir_generation (id, generation) VALUES (1, 0)")
    bump = "UPDATE keydir_generation SET generation = generation + 1 WHERE id = 1"
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION keydir_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN {bump}; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER recipient_keys_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON recipient_keys FOR EACH STATEMENT EXECUTE FUNCTION keydir_generation_bump()"
        )
        return
    for event in ("INSERT", "UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER recipient_keys_generation_{event.lower()} AFTER {event} ON recipient_keys "
            f"BEGIN {bump}; END"
        )


def downgrade() -> None:
    # Forward-only: restore from backup instead of downgrading a PHI store.
    raise NotImplementedError("forward-only migration")
