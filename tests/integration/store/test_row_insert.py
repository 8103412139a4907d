"""``db.RowInsert`` writes exactly what it is given, by executemany and (PostgreSQL, from
``COPY_AT`` rows) by COPY: the two paths must store the same values."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sealmail.store import db
from sealmail.store.tables import UtcDateTime

meta = sa.MetaData()
# Every value type the product stores, each column nullable.
TYPES: dict[str, Any] = {
    "doc": sa.JSON,
    "blob": sa.LargeBinary,
    "at": UtcDateTime,
    "flag": sa.Boolean,
    "n": sa.Integer,
    "text": sa.Text,
}
probe = sa.Table(
    "row_insert_probe",
    meta,
    sa.Column("id", sa.String(40), primary_key=True),
    *(sa.Column(name, type_) for name, type_ in TYPES.items()),
)
AWKWARD = 'tab\there, new\nline, back\\slash, \\N, quote " and \u2028 and é'


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = db.create_engine(db_url)
    meta.create_all(engine)
    yield engine
    meta.drop_all(engine)
    engine.dispose()


def rows(prefix: str, count: int) -> list[dict[str, Any]]:
    at = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    return [
        {
            "id": f"{prefix}{i:04}",
            "doc": None if i % 7 == 0 else {"k": [i, AWKWARD, None], "empty": {}},
            "blob": None if i % 5 == 0 else bytes(range(256)) + b"\\\t\n",
            "at": None if i % 3 == 0 else at + timedelta(seconds=i),
            "flag": i % 2 == 0,
            "n": None if i % 4 == 0 else i - 50,
            "text": None if i % 6 == 0 else f"{AWKWARD} {i}",
        }
        for i in range(count)
    ]


@pytest.mark.parametrize("count", [3, db.COPY_AT, db.COPY_AT * 3])
def test_rows_come_back_as_given_whichever_way_they_went(engine: sa.Engine, count: int) -> None:
    given = rows("r", count)
    with engine.begin() as conn:
        db.RowInsert(probe)(conn, given)
    with engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(sa.select(probe).order_by(probe.c.id))]
    assert stored == given


def test_a_duplicate_key_fails_the_whole_copy_and_nothing_is_stored(engine: sa.Engine) -> None:
    given = rows("d", db.COPY_AT + 1)
    given[-1]["id"] = given[0]["id"]
    with pytest.raises(sa.exc.IntegrityError, match=r"(?i)unique|duplicate"), engine.begin() as conn:
        db.RowInsert(probe)(conn, given)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar() == 0


@pytest.mark.parametrize("count", [2, db.COPY_AT + 1])
def test_driver_errors_surface_as_sqlalchemy_errors_and_the_engine_stays_usable(
    engine: sa.Engine, count: int
) -> None:
    """Callers catch ``SQLAlchemyError`` (the worker's flush loop) or ``IntegrityError`` (an
    insert race): a raw ``sqlite3``/``psycopg`` error from the driver's cursor escaped both.
    Parameters stay out of the message (rows carry sealed content and addresses)."""
    given = rows("e", count)
    given[-1]["id"] = given[0]["id"]
    with pytest.raises(sa.exc.IntegrityError) as raised, engine.begin() as conn:
        db.RowInsert(probe)(conn, given)
    assert AWKWARD not in str(raised.value)
    rename = db.DriverStatement(
        sa.update(probe).where(probe.c.id == sa.bindparam("key")).values(id=sa.bindparam("new"))
    )
    with engine.begin() as conn:
        db.RowInsert(probe)(conn, rows("k", 2))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        rename(conn, {"key": "k0000", "new": "k0001"})
    with engine.begin() as conn:
        assert rename(conn, {"key": "k0000", "new": "k0002"}) == 1
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(probe.c.id)).scalars()) == ["k0001", "k0002"]


def test_bulk_insert_and_copy_text_raise_integrity_errors(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        db.bulk_insert(conn, probe, [{"id": "b1", "n": 1}])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        db.bulk_insert(conn, probe, [{"id": "b2", "n": 1}, {"id": "b1", "n": 2}])
    if engine.dialect.name == "postgresql":
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            db.copy_text(conn, probe, ("id", "n"), "b3\t1\nb1\t2\n")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar() == 1


def test_a_whole_second_is_stored_as_sqlalchemy_stores_it(engine: sa.Engine) -> None:
    """SQLite keeps datetimes as text: the driver-level paths must write the instant exactly
    as SQLAlchemy does, or equal instants compare unequal.  sqlite3's own adapter dropped
    ".000000" when the microseconds were 0, so such a time sorted before itself."""
    at = datetime(2026, 12, 5, 4, 0, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.insert(probe).values(id="core", at=at))
        db.RowInsert(probe)(conn, [{"id": "row", "at": at}])
        db.bulk_insert(conn, probe, [{"id": "bulk", "at": at}])
    with engine.connect() as conn:
        text = dict(conn.execute(sa.select(probe.c.id, sa.cast(probe.c.at, sa.Text))).all())
        same = conn.execute(sa.select(probe.c.id).where(probe.c.at == at).order_by(probe.c.id)).scalars()
        assert list(same) == ["bulk", "core", "row"]
    assert text["row"] == text["bulk"] == text["core"], text


@pytest.mark.parametrize("count", [3, db.COPY_AT, db.COPY_AT * 2])
def test_inserts_in_one_pipeline_store_what_they_are_given(engine: sa.Engine, count: int) -> None:
    """``db.pipelined``: one round trip for several inserts (an intake batch's); from
    ``COPY_AT`` rows they load by COPY, which PostgreSQL runs in no pipeline."""
    first, second = rows("p", count), rows("q", count)
    with engine.begin() as conn, db.pipelined(conn, count):
        db.RowInsert(probe)(conn, first)
        db.RowInsert(probe)(conn, second)
    with engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(sa.select(probe).order_by(probe.c.id))]
    assert stored == first + second


def test_an_error_in_a_pipeline_surfaces_at_its_end_and_nothing_is_stored(engine: sa.Engine) -> None:
    given = rows("x", 4)

    def both() -> None:
        with engine.begin() as conn, db.pipelined(conn, 4):
            db.RowInsert(probe)(conn, given[:2])
            db.RowInsert(probe)(conn, given[1:])  # x0001 again

    with pytest.raises(sa.exc.IntegrityError) as raised:
        both()
    assert AWKWARD not in str(raised.value)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar() == 0
    with engine.begin() as conn, db.pipelined(conn, 4):  # the engine is still usable
        db.RowInsert(probe)(conn, given)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar() == 4


def test_many_rows_in_a_driver_pipeline_go_by_executemany(pg_database: str | None) -> None:
    """A pipeline opened on the driver (not by ``pipelined``) with ``COPY_AT`` rows or more."""
    if pg_database is None:
        pytest.skip("PostgreSQL not reachable; set SEALMAIL_TEST_POSTGRES_URL")
    engine = db.create_engine(pg_database)
    meta.create_all(engine)
    try:
        given = rows("m", db.COPY_AT + 5)
        with engine.begin() as conn, conn.connection.dbapi_connection.pipeline():  # type: ignore[union-attr]
            db.RowInsert(probe)(conn, given)
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(probe)).scalar() == len(given)
    finally:
        meta.drop_all(engine)
        engine.dispose()
