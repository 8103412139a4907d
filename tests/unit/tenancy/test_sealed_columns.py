"""Every column that names a tenant key is in the rotation list: a table that gained one
without joining ``sealed_columns`` would keep the old key alive, or lose its content."""

from __future__ import annotations

import sealmail.schema  # noqa: F401 — registers every feature's tables on the metadata
from sealmail.app import sealed_columns
from sealmail.store.tables import metadata

KEY_COLUMNS = ("key_id", "tenant_key_id", "secret_key_id", "previous_secret_key_id")


def test_every_tenant_key_column_is_rotated() -> None:
    found = {
        f"{table.name}.{column.name}"
        for table in metadata.tables.values()
        for column in table.columns
        if column.name in KEY_COLUMNS
    }
    listed = {spec.name for spec in sealed_columns()}
    assert found == listed
    for spec in sealed_columns():
        for name in (spec.owner, spec.key_id, spec.wrapped, "tenant_id"):
            assert name in spec.table.c, f"{spec.table.name} has no {name}"
