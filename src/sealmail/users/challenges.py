"""One-time ceremony state kept server-side (``console_challenges``): put, then taken once.

A WebAuthn challenge is keyed by the session that asked for it and the ceremony, so a
challenge made for one browser's session cannot finish another's; an OpenID Connect
sign-in is keyed by its ``state``.  Taking deletes the row inside the caller's transaction:
a replayed response finds nothing.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.users.tables import console_challenges


def key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def put(
    conn: Connection, row_id: str, purpose: str, data: dict[str, Any], now: datetime, ttl: timedelta,
    tenant_id: str | None = None,
) -> None:  # fmt: skip
    """Store (replacing any earlier one under the same key); sweep what has expired."""
    conn.execute(sa.delete(console_challenges).where(console_challenges.c.expires_at <= now))
    conn.execute(sa.delete(console_challenges).where(console_challenges.c.id == row_id))
    conn.execute(
        sa.insert(console_challenges).values(
            id=row_id, purpose=purpose, tenant_id=tenant_id, data=data, created_at=now, expires_at=now + ttl
        )
    )


def take(conn: Connection, row_id: str, purpose: str, now: datetime) -> dict[str, Any] | None:
    """The stored state, deleted; None when absent, of another purpose or expired."""
    row = conn.execute(
        sa.select(console_challenges).where(console_challenges.c.id == row_id).with_for_update()
    ).first()
    if row is None:
        return None
    conn.execute(sa.delete(console_challenges).where(console_challenges.c.id == row_id))
    if row.purpose != purpose or row.expires_at <= now:
        return None
    data: dict[str, Any] = dict(row.data)
    return data
