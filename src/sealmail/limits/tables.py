"""The rate-limit counters table, on the shared metadata (see ``store/all_tables.py``).

One row per (limit key, fixed window): the key names the window's start, so a new window is
a new row and an old one is only garbage, deleted once ``expires_at`` (epoch seconds) passes.
Not tenant-scoped: keys also count anonymous clients (failed authentications, public links).
"""

from __future__ import annotations

import sqlalchemy as sa

from sealmail.store.tables import metadata

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("bucket", sa.String(200), primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_rate_limits_expires_at", "expires_at"),
)

__all__ = ["metadata", "rate_limits"]
