"""Keyset pages over a tenant's rows ordered by a unique key other than the id.

The cursor a page hands out is the id of its last row: opaque to clients, and short enough
for the ``Cursor`` query type however long the sort key is (a list name runs to 100
characters).  The next request looks that row up, in this tenant only, and continues after
its key; never OFFSET, so a page costs the same at the millionth row as at the first and a
row added meanwhile is neither skipped nor repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.errors import ValidationFailed


def cursor_key(
    conn: Connection, table: sa.Table, cursor: str, key: Sequence[Any], *scope: Any
) -> tuple[Any, ...]:
    """The sort key of the row ``cursor`` names within ``scope`` (the tenant, and the contact
    for a ledger); a cursor this listing never gave out — garbled, or another tenant's — is a
    422 naming the field, not an empty page that would read as "the end"."""
    row = conn.execute(sa.select(*key).where(table.c.id == cursor, *scope)).first()
    if row is None:
        raise ValidationFailed([{"field": "cursor", "message": "is not a cursor this listing gave out"}])
    return tuple(row)


def beyond(key: Sequence[Any], values: Sequence[Any], *, descending: bool = False) -> Any:
    """Rows strictly after ``values`` in the (lexicographic) order of ``key``: a row-value
    comparison, which PostgreSQL turns into an index condition (also on an index holding
    only a prefix of the key, as the consent ledger's) and SQLite (3.15+) seeks on, where
    the spelt-out ``a > x OR (a = x AND b > y)`` was a filter over every row before it."""
    row, after = sa.tuple_(*key), sa.tuple_(*values)
    return row < after if descending else row > after


def split(rows: Sequence[Any], limit: int) -> tuple[Sequence[Any], str | None]:
    """The page (``limit`` rows of the ``limit + 1`` fetched) and the cursor to the next one,
    None on the last page."""
    page = rows[:limit]
    return page, (page[-1].id if len(rows) > limit and page else None)


def every(page: Callable[..., dict[str, Any]], tenant_id: str) -> list[dict[str, Any]]:
    """Every row, gathered a page of 1000 at a time: for callers that need the whole set
    (a CLI table, a form's choices), each query still bounded."""
    out: list[dict[str, Any]] = []
    cursor = ""
    while True:
        got = page(tenant_id, limit=1000, cursor=cursor)
        out.extend(got["data"])
        if not (cursor := got["next_cursor"]):
            return out
