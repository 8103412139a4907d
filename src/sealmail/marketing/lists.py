"""Static lists of contacts: a segment can test membership, a journey can add to one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.errors import Conflict, NotFound, ValidationFailed
from sealmail.ids import new_id
from sealmail.marketing import keyset
from sealmail.marketing.tables import mkt_contacts as ct
from sealmail.marketing.tables import mkt_list_members as lm
from sealmail.marketing.tables import mkt_lists as ls
from sealmail.store import db

MAX_ADD = 10_000


def list_id(conn: Connection, tenant_id: str, name: str) -> str:
    found = conn.execute(sa.select(ls.c.id).where(ls.c.tenant_id == tenant_id, ls.c.name == name)).scalar()
    if found is None:
        raise NotFound(f"no list named {name!r}")
    return str(found)


def add_members(conn: Connection, tenant_id: str, lid: str, contact_ids: list[str]) -> list[str]:
    """Add contacts (of this tenant only) to a list; the ids that joined (already-members
    are left as they are and not returned)."""
    owned = [
        r
        for (r,) in conn.execute(
            sa.select(ct.c.id).where(ct.c.tenant_id == tenant_id, ct.c.id.in_(contact_ids))
        )
    ]
    if not owned:
        return []
    # Those the insert did not skip: no read of the list first.  ``list_id = :l AND
    # contact_id IN (…)`` was planned, while a journey filled a new list faster than
    # autovacuum analyzed it, as a walk of the whole list per batch (seconds a round at 100k).
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    now = datetime.now(UTC)
    stmt = (
        insert(lm).on_conflict_do_nothing(index_elements=["list_id", "contact_id"]).returning(lm.c.contact_id)
    )
    rows = [
        {"list_id": lid, "contact_id": c, "tenant_id": tenant_id, "added_at": now} for c in sorted(set(owned))
    ]
    return sorted(conn.execute(stmt, rows).scalars().all())


class Lists:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, tenant_id: str, name: str, actor: str) -> dict[str, Any]:
        name = name.strip()
        if not 1 <= len(name) <= 100:
            raise ValidationFailed([{"field": "name", "message": "1–100 characters"}])
        lid = new_id("mkl")
        with db.write(self.engine) as conn:
            if conn.execute(sa.select(ls.c.id).where(ls.c.tenant_id == tenant_id, ls.c.name == name)).first():
                raise Conflict(f"a list named {name!r} exists")
            conn.execute(
                sa.insert(ls).values(id=lid, tenant_id=tenant_id, name=name, created_at=datetime.now(UTC))
            )
            audit.append(
                conn, action=AuditAction.MKT_LIST_CREATED, actor=actor, tenant_id=tenant_id, target=lid
            )
        return {"id": lid, "name": name, "members": 0}

    def add(self, tenant_id: str, name: str, contact_ids: list[str], actor: str) -> dict[str, Any]:
        if len(contact_ids) > MAX_ADD:
            raise ValidationFailed([{"field": "contact_ids", "message": f"at most {MAX_ADD} at a time"}])
        with db.write(self.engine) as conn:
            lid = list_id(conn, tenant_id, name)
            joined = add_members(conn, tenant_id, lid, contact_ids)
            audit.append(
                conn,
                action=AuditAction.MKT_LIST_MEMBERS_ADDED,
                actor=actor,
                tenant_id=tenant_id,
                target=lid,
                details={"added": len(joined)},
            )
        return {"id": lid, "name": name, "added": len(joined), "joined": joined}

    def remove(self, tenant_id: str, name: str, contact_ids: list[str], actor: str) -> dict[str, Any]:
        """Take contacts off a list; ids not on it (or of another tenant) are ignored."""
        if len(contact_ids) > MAX_ADD:
            raise ValidationFailed([{"field": "contact_ids", "message": f"at most {MAX_ADD} at a time"}])
        with db.write(self.engine) as conn:
            lid = list_id(conn, tenant_id, name)
            gone = conn.execute(
                sa.delete(lm).where(
                    lm.c.list_id == lid, lm.c.tenant_id == tenant_id, lm.c.contact_id.in_(contact_ids)
                )
            ).rowcount
            audit.append(
                conn,
                action=AuditAction.MKT_LIST_MEMBERS_REMOVED,
                actor=actor,
                tenant_id=tenant_id,
                target=lid,
                details={"removed": gone},
            )
        return {"id": lid, "name": name, "removed": gone}

    def get(self, tenant_id: str, lid: str) -> dict[str, Any]:
        """One list by id, with its member count (404 for another tenant's)."""
        count = sa.select(sa.func.count()).where(lm.c.list_id == ls.c.id).scalar_subquery()
        with db.reader(self.engine) as conn:
            row = conn.execute(
                sa.select(ls.c.id, ls.c.name, count.label("members")).where(
                    ls.c.tenant_id == tenant_id, ls.c.id == lid
                )
            ).first()
        if row is None:
            raise NotFound(f"no list {lid!r}")
        return {"id": row.id, "name": row.name, "members": row.members}

    def members(self, tenant_id: str, lid: str, *, limit: int = 100, after: str = "") -> dict[str, Any]:
        """A page of a list's members (id and email), by contact id after ``after``."""
        limit = max(1, min(limit, 500))
        with db.reader(self.engine) as conn:
            rows = conn.execute(
                sa.select(ct.c.id, ct.c.email)
                .join(lm, lm.c.contact_id == ct.c.id)
                .where(lm.c.list_id == lid, lm.c.tenant_id == tenant_id, ct.c.id > after)
                .order_by(ct.c.id)
                .limit(limit + 1)
            ).all()
        page = rows[:limit]
        return {
            "data": [{"id": r.id, "email": r.email} for r in page],
            "next_cursor": page[-1].id if len(rows) > limit else None,
        }

    def list(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every list (each with a member count); callers that can show a page use ``page``."""
        return keyset.every(self.page, tenant_id)

    def page(self, tenant_id: str, *, limit: int = 100, cursor: str = "") -> dict[str, Any]:
        """``limit`` lists by name after the list ``cursor`` names (a 422 for one that is not
        this tenant's), each with its member count, and the cursor to the next page."""
        count = sa.select(sa.func.count()).where(lm.c.list_id == ls.c.id).scalar_subquery()
        query = sa.select(ls.c.id, ls.c.name, count.label("members")).where(ls.c.tenant_id == tenant_id)
        with db.reader(self.engine) as conn:
            if cursor:
                key = keyset.cursor_key(conn, ls, cursor, [ls.c.name], ls.c.tenant_id == tenant_id)
                query = query.where(keyset.beyond([ls.c.name], key))
            rows = conn.execute(query.order_by(ls.c.name).limit(limit + 1)).all()
        page, after = keyset.split(rows, limit)
        return {
            "data": [{"id": r.id, "name": r.name, "members": r.members} for r in page],
            "next_cursor": after,
        }
