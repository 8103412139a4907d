"""Migrations run to head and leave nothing for autogenerate to find, on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from sealmail.schema import metadata
from sealmail.store import db, migrate


def test_fresh_sqlite_database_migrates_to_head_and_matches_the_models(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    migrate.upgrade(engine)
    cfg = migrate.alembic_config(engine)
    assert migrate.current_revision(engine) == migrate.script_heads(engine)
    command.check(cfg)  # raises if the models and the migrated schema differ
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"
    engine.dispose()


def test_postgresql_database_migrates_to_head_and_matches_the_models(pg_database: str | None) -> None:
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable; set SEALMAIL_TEST_POSTGRES_URL")
    engine = db.create_engine(pg_database)
    cfg = migrate.alembic_config(engine)
    assert migrate.current_revision(engine) == migrate.script_heads(engine)
    command.check(cfg)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        # Sealed content is stored out of line without a compression attempt (0031).
        storage = conn.scalar(
            sa.text(
                "SELECT attstorage FROM pg_attribute"
                " WHERE attrelid = 'messages'::regclass AND attname = 'content'"
            )
        )
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert storage == "e"
    engine.dispose()


def test_migrating_twice_is_harmless(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'twice.db'}")
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    command.check(migrate.alembic_config(engine))
    engine.dispose()
