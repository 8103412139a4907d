"""Restore streams each table file: a table file many times larger than the read chunk and
the insert batch comes back row for row, and the restore's memory peak stays far below the
file's size (the old restore read the whole file, then split it: over twice its size)."""

from __future__ import annotations

import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from sealmail.app import Services
from sealmail.evidence import backup, restore
from sealmail.schema import metadata
from sealmail.store import db
from sealmail.store.tables import captured_messages

pytestmark = [pytest.mark.hipaa("164.308(a)(7)(ii)(A)"), pytest.mark.timeout(180)]
ROWS = 2_000
CHUNK = 4096


def _fill(services: Services) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"cap_{i:08d}",
            "sealmail_message_id": None,
            "received_at": now,
            "mail_from": "sender@clinic.example",
            "rcpt_to": [f"patient{i}@example.net"],
            "tls_version": "TLSv1.3",
            "size": 16_384,
            "data": bytes([i % 251]) * 16_384,
        }
        for i in range(ROWS)
    ]
    with services.engine.begin() as conn:
        conn.execute(sa.insert(captured_messages), rows)


def _rows(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        query = sa.select(captured_messages).order_by(captured_messages.c.id)
        return [tuple(r) for r in conn.execute(query)]


def test_a_table_file_larger_than_the_chunk_is_streamed_in(
    services: Services,
    scratch_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fill(services)
    made = backup.create(services.engine, metadata.sorted_tables, tmp_path / "big.zip", None)
    with zipfile.ZipFile(made.path) as archive:
        size = archive.getinfo("tables/captured_messages.jsonl").file_size
    assert size > 1000 * CHUNK  # many chunks
    monkeypatch.setattr(restore, "BATCH_BYTES", 256 * 1024)  # many batches too
    scratch = db.create_engine(scratch_url, pool_size=2)
    try:
        tracemalloc.start()
        result = restore.restore(scratch, metadata.sorted_tables, made.path, chunk_bytes=CHUNK)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert result.ok, result.problem
        assert _rows(scratch) == _rows(services.engine)
    finally:
        scratch.dispose()
    # Memory held a chunk, a batch and the schema's upgrade, never the table file.
    assert peak < size / 4, f"restore peaked at {peak} bytes for a {size}-byte table file"
