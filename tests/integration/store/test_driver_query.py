"""``DriverQuery`` (SQLite's side of the worker's flush) sends the statement, parameters and
rows SQLAlchemy itself would: the same rows read back and written, literal values of the
statement kept, expanding lists of any length, listeners told of every statement."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sealmail.store import db
from sealmail.store.driver_query import DriverQuery
from sealmail.store.tables import UtcDateTime

meta = sa.MetaData()
probe = sa.Table(
    "driver_query_probe",
    meta,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("doc", sa.JSON),
    sa.Column("at", UtcDateTime),
    sa.Column("n", sa.Integer, nullable=False),
)
AT = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)

# A literal IN list (expanded by SQLAlchemy at execution), a typed comparison and an expanding list.
SELECT = sa.select(probe.c.id, probe.c.doc, probe.c.at, probe.c.n).where(
    probe.c.state.in_(("queued", "deferred")),
    probe.c.at <= sa.bindparam("b_now", type_=probe.c.at.type),
    probe.c.id.in_(sa.bindparam("b_ids", expanding=True)),
)
BUMP = (
    sa.update(probe)
    .where(probe.c.id == sa.bindparam("b_id"), probe.c.state == "queued")
    .values(n=probe.c.n + sa.bindparam("b_n"), at=sa.bindparam("b_at"))
)
CLAIM = (
    sa.update(probe)
    .where(probe.c.id.in_(sa.select(probe.c.id).where(probe.c.state == "queued").limit(sa.bindparam("lim"))))
    .values(state="taken")
    .returning(probe.c.id, probe.c.at, probe.c.doc)
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = db.create_engine(f"sqlite:///{tmp_path}/probe.db")
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            probe.insert(),
            [
                {
                    "id": f"p{i:02}",
                    "state": ("queued", "deferred", "sent")[i % 3],
                    "doc": None if i % 4 == 0 else {"k": [i, "é"], "empty": {}},
                    "at": None if i % 5 == 0 else AT + timedelta(seconds=i - 10),
                    "n": i,
                }
                for i in range(20)
            ],
        )
    yield engine
    engine.dispose()


def _all(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(probe).order_by(probe.c.id))]


@pytest.mark.parametrize("count", [1, 3, 20])
def test_a_select_reads_what_sqlalchemy_reads(engine: sa.Engine, count: int) -> None:
    query = DriverQuery(SELECT)
    ids = [f"p{i:02}" for i in range(1, count + 1)]
    with engine.begin() as conn:
        expected = [tuple(r) for r in conn.execute(SELECT, {"b_now": AT, "b_ids": ids})]
        got = query(conn, {"b_now": AT, "b_ids": ids})
        again = query(conn, {"b_now": AT - timedelta(seconds=5), "b_ids": ids})  # the kept plan
    assert expected  # the probe holds matching rows: a wrong parameter cannot pass unnoticed
    assert got == expected
    assert isinstance(got[0][2], datetime) and got[0][2].tzinfo is not None
    assert [r for r in got if r[2] is not None and r[2] <= AT - timedelta(seconds=5)] == again


def test_writes_store_what_sqlalchemy_stores(engine: sa.Engine, tmp_path: Path) -> None:
    twin = db.create_engine(f"sqlite:///{tmp_path}/twin.db")
    meta.create_all(twin)
    with engine.connect() as conn, twin.begin() as copy:
        copy.execute(probe.insert(), [dict(r._mapping) for r in conn.execute(sa.select(probe))])
    bumps = [{"b_id": f"p{i:02}", "b_n": 100 + i, "b_at": AT + timedelta(hours=i)} for i in range(0, 20, 2)]
    with engine.begin() as conn:
        conn.execute(BUMP, bumps)
        claimed = sorted(tuple(r) for r in conn.execute(CLAIM, {"lim": 4}))
    with twin.begin() as conn:
        DriverQuery(BUMP).many(conn, bumps)
        driver_claimed = sorted(DriverQuery(CLAIM)(conn, {"lim": 4}))
    assert len(claimed) == 4 and driver_claimed == claimed
    assert _all(twin) == _all(engine)
    twin.dispose()


def test_listeners_see_each_statement_and_may_refuse_it(engine: sa.Engine) -> None:
    seen: list[tuple[str, bool]] = []

    def listen(_conn: Any, _cursor: Any, sql: str, _params: Any, _context: Any, many: bool) -> None:
        seen.append((sql.split()[0], many))
        if sql.startswith("UPDATE"):
            raise sa.exc.OperationalError(sql[:20], {}, Exception("refused"))

    sa.event.listen(engine, "before_cursor_execute", listen)
    try:
        with engine.begin() as conn:
            assert DriverQuery(SELECT)(conn, {"b_now": AT, "b_ids": ["p01"]}) == [
                ("p01", {"k": [1, "é"], "empty": {}}, AT - timedelta(seconds=9), 1)
            ]
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            DriverQuery(BUMP).many(conn, [{"b_id": "p03", "b_n": 1, "b_at": AT}])
    finally:
        sa.event.remove(engine, "before_cursor_execute", listen)
    assert seen == [("SELECT", False), ("UPDATE", True)]
    assert _all(engine)[3][4] == 3  # refused before it ran, and rolled back
