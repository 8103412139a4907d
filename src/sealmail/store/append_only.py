"""Tables the database itself keeps append-only: a trigger refuses UPDATE and DELETE (and
TRUNCATE on PostgreSQL) of their rows, whoever issues them.

The consent ledger is evidence (who granted, revoked or authorized what, when); the code
only inserts into it, and the trigger makes that a property of the store: a bug or a
hand-run statement fails instead of rewriting history.  Only a database that is being
wiped whole — a restore drill's scratch copy — lifts the guard, inside the transaction
that empties it (``lifted``), and the guard is back when that transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection

TABLES = ("mkt_consent_events",)


def _message(table: str) -> str:
    return f"{table} is append-only: record a new event instead"


def create(conn: Connection, table: str) -> None:
    """The guard's function and triggers on ``table`` (in a migration or ``lifted``)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"CREATE OR REPLACE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{_message(table)}' USING ERRCODE = 'integrity_constraint_violation'; "
            "END $$"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )
        conn.exec_driver_sql(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {table}_append_only()"
        )
        return
    for event in ("UPDATE", "DELETE"):
        conn.exec_driver_sql(
            f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{_message(table)}'); END"
        )


def drop(conn: Connection, table: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        return
    for event in ("update", "delete"):
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{event}")


@contextmanager
def lifted(conn: Connection, present: set[str]) -> Iterator[None]:
    """Within the caller's transaction: the guards of the ``present`` tables off, then on
    again — for emptying a scratch database, never for the live one."""
    tables = [t for t in TABLES if t in present]
    for table in tables:
        drop(conn, table)
    yield
    for table in tables:
        create(conn, table)
