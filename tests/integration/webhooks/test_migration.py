"""Revision 0004 branches off 0002 and creates the webhook tables and nothing else."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from sealmail.store import db, migrate


def test_0004_creates_exactly_the_webhook_tables(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(engine, "0002")
    before = set(sa.inspect(engine).get_table_names())
    migrate.upgrade(engine, "0004")
    added = set(sa.inspect(engine).get_table_names()) - before
    engine.dispose()
    assert added == {"webhook_endpoints", "webhook_deliveries", "webhook_attempts", "webhook_cursors"}
