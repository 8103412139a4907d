"""Engines and transactions for SQLite and PostgreSQL; engine differences live here.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so two writers never deadlock upgrading a read lock (the queue claim
relies on this: it is the SQLite equivalent of ``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import contextlib
import json
import operator
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator

from sealmail.store.sqlite_writer import WriterConnection, writer_lock_for


def normalize_url(url: str) -> str:
    """Pick the psycopg 3 driver for plain ``postgresql://`` URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine(
    url: str, *, synchronous: str = "FULL", pool_size: int = 10, max_overflow: int = 20
) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "factory": WriterConnection},
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        _configure_sqlite(engine, synchronous)
        return engine
    # LIFO: the connection given back last is taken next, so a few connections (and their
    # backends' prepared statements and caches) do the work and the rest stay idle, where FIFO
    # rotated a worker's every claim over seven of them.
    engine = sa.create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_use_lifo=True)
    _ping_when_idle(engine)
    # A batch INSERT (accepted messages, their recipients and events; attempts) as one
    # multi-row statement, as SQLAlchemy does for psycopg2: psycopg 3's executemany sends a
    # statement per row through its pipeline, ~2x the client CPU for four rows.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


# A connection idle for longer than this is pinged when checked out; one used more recently is
# not.  ``pool_pre_ping`` pinged at every checkout: a round trip (and BEGIN) before each of a
# worker's claims and flushes, ~470 statements of 1,000 messages' ~6,000 on the SMTP →
# PostgreSQL path (issue 18).  A server lost within the second fails that one transaction,
# which every caller already survives (the gateway answers 451, the worker retries), and the
# disconnect invalidates the pool so the rest reconnect.
PING_IDLE_SECONDS = 1.0
_IDLE_SINCE = "sealmail_idle_since"


def _ping_when_idle(engine: Engine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        # ``record.info`` lives as long as the DBAPI connection: a reconnect starts it empty.
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since <= PING_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise sa_exc.DisconnectionError(f"idle connection lost: {exc}") from exc


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    database = engine.url.database

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit
        # transactions would start DEFERRED and upgrade locks mid-transaction).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        if isinstance(dbapi_conn, WriterConnection):
            dbapi_conn.writer_lock = writer_lock_for(database)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        raw = conn.connection.dbapi_connection
        if mode == "DEFERRED" or not isinstance(raw, WriterConnection):
            conn.exec_driver_sql(f"BEGIN {mode}")
            return
        statement = f"BEGIN {mode}"
        try:
            raw.begin_write(mode)
        except sqlite3.Error as err:
            # As ``exec_driver_sql`` would have raised it: callers catch SQLAlchemy's errors.
            raise sa_exc.DBAPIError.instance(statement, None, err, sqlite3.Error) from err


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on success, rolled back on any exception."""
    with engine.begin() as conn:
        yield conn


def reader(engine: Engine) -> Connection:
    """A connection for reads: on SQLite its transactions start DEFERRED.

    Write transactions (``engine.begin()``) start IMMEDIATE; a read inside one that
    opened a second IMMEDIATE connection would wait on its own process's lock, so
    every read-only ``connect()`` goes through here.
    """
    return engine.connect().execution_options(sqlite_begin="DEFERRED")


def analyze(engine: Engine, table: sa.Table) -> None:
    """Refresh the planner's statistics of one table (after a bulk load).

    SQLite has none until ``ANALYZE`` runs, and without them it reads a tenant's rows
    through any index on ``tenant_id`` (a B-tree search per row) where a plain scan is
    several times cheaper, and prefers that index to a primary-key ``IN`` list.
    """
    name = engine.dialect.identifier_preparer.format_table(table)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ANALYZE {name}")


def without_jit(conn: Connection) -> None:
    """PostgreSQL: no JIT compilation for the rest of the caller's transaction.

    A query over a million rows is costed above ``jit_above_cost``, and compiling its
    expressions (with inlining and optimization past 500,000) took longer than it saved:
    +170 ms of CPU on a 110 ms segment count at 1 M contacts.  Interactive counts want
    the predictable plan.  SQLite has no JIT; nothing to do there.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL jit = off")


def any_of(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """PostgreSQL: ``column = ANY(:name)``, the ids bound as one array.

    The statement's text is then the same for any number of ids, so psycopg caches its
    parsing (and prepares it after a few runs); an expanding ``IN`` list renders one
    placeholder per id, and psycopg re-parses every statement of more than 50.  For
    statements built once per dialect; SQLite keeps the expanding ``IN``.
    """
    return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))


def bulk_insert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert many rows (each with the same keys) in the caller's transaction, fast.

    PostgreSQL: one ``COPY … FROM STDIN`` (psycopg's C encoder, no SQL text to parse);
    SQLite: one ``executemany`` of a prepared INSERT.  Both skip SQLAlchemy's per-row
    parameter processing: values go through each column type's bind processor once, JSON
    is serialized with ``json.dumps`` as the JSON type does.  For imports of thousands of
    rows a chunk, where the generic multi-row INSERT spends most of its time building and
    parsing a statement with thousands of placeholders.
    """
    if not rows:
        return
    names = list(rows[0])
    columns = [table.c[n] for n in names]  # KeyError on a name that is not a column
    values = _encoded(conn.dialect, columns, [operator.itemgetter(*names)(r) for r in rows])
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
    target = conn.dialect.identifier_preparer.format_table(table)
    if conn.dialect.name == "postgresql":
        raw: Any = conn.connection.dbapi_connection
        sql = f"COPY {target} ({quoted}) FROM STDIN"
        with driver_errors(conn, sql), raw.cursor() as cur, cur.copy(sql) as copy:
            for value in values:
                copy.write_row(value)
        return
    marks = ", ".join("?" for _ in names)
    # Names come from the table's metadata, quoted by the dialect; values are bound.
    insert = f"INSERT INTO {target} ({quoted}) VALUES ({marks})"  # noqa: S608
    conn.exec_driver_sql(insert, values)  # a list of tuples: executemany


def copy_text(conn: Connection, table: sa.Table, names: tuple[str, ...], text: str) -> None:
    """PostgreSQL only: load rows already written as COPY text (tab-separated, ``\\N`` for
    NULL, escaped as the text format requires) into ``names`` of ``table``, one write.

    For the hottest bulk loads, whose caller builds the text directly instead of a dict
    and a tuple per row (``bulk_insert``'s path)."""
    prep = conn.dialect.identifier_preparer
    quoted = ", ".join(prep.quote(table.c[n].name) for n in names)  # KeyError on a non-column
    raw: Any = conn.connection.dbapi_connection
    sql = f"COPY {prep.format_table(table)} ({quoted}) FROM STDIN"
    with driver_errors(conn, sql), raw.cursor() as cur, cur.copy(sql) as copy:
        copy.write(text)


def bulk_update(conn: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]) -> None:
    """``UPDATE table SET … WHERE key = …`` for many rows (same keys each), one
    ``executemany`` with values encoded as ``bulk_insert`` does them."""
    if not rows:
        return
    names = [n for n in rows[0] if n != key]
    columns = [table.c[n] for n in (*names, key)]
    values = _encoded(conn.dialect, columns, [operator.itemgetter(*names, key)(r) for r in rows])
    prep = conn.dialect.identifier_preparer
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    sets = ", ".join(f"{prep.quote(n)} = {mark}" for n in names)
    update = f"UPDATE {prep.format_table(table)} SET {sets} WHERE {prep.quote(key)} = {mark}"  # noqa: S608
    conn.exec_driver_sql(update, values)


def _encoded(dialect: sa.Dialect, columns: list[sa.Column[Any]], rows: list[Any]) -> list[Any]:
    """Rows (tuples in ``columns`` order) with the values the driver takes."""
    if len(columns) == 1:
        rows = [(r,) for r in rows]
    convert = [(i, f) for i, c in enumerate(columns) if (f := _converter(c.type, dialect)) is not None]
    return converted(rows, convert)


def converted(rows: list[Any], convert: list[tuple[int, Any]]) -> list[Any]:
    """``rows`` (sequences) as tuples with ``f`` applied to the value at ``i`` for each ``(i, f)``."""
    if not convert:
        return rows
    out = []
    for r in rows:
        row = list(r)
        for i, f in convert:
            row[i] = f(row[i])
        out.append(tuple(row))
    return out


_UNSET = object()


def _json(value: Any) -> Any:
    if value is None:
        return None
    return "{}" if value == {} else json.dumps(value)


def _converter(type_: Any, dialect: sa.Dialect) -> Any:
    if isinstance(type_, sa.JSON):
        return _json
    if dialect.name == "postgresql" and not isinstance(type_, TypeDecorator):
        return None  # psycopg adapts str, int, bytes and datetimes itself
    process = type_.dialect_impl(dialect).bind_processor(dialect)  # as _row_converter
    if process is None:
        return None
    last: list[Any] = [_UNSET, None]

    def cached(value: Any) -> Any:
        # A chunk's rows share their timestamps: convert each distinct object once.
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]

    return cached


@contextmanager
def driver_errors(conn: Connection, statement: str, params: Any = None) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's (``IntegrityError``, ``OperationalError``,
    …), as a statement run through SQLAlchemy raises them, for statements run on the
    DB-API connection directly.  Callers catch ``SQLAlchemyError`` (the worker's flush
    loop) or ``IntegrityError`` (a lost insert race); a raw ``psycopg``/``sqlite3`` error
    slipped past both.  A lost server connection is invalidated so the pool replaces it."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise sa_exc.DBAPIError.instance(
            statement,
            params,
            exc,
            dbapi.Error,
            hide_parameters=True,  # rows carry sealed content and addresses: keep them out of logs
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from exc


@contextmanager
def pipelined(conn: Connection, rows: int) -> Iterator[None]:
    """PostgreSQL: the driver statements run inside (``RowInsert``'s ``executemany``) reach the
    server as one pipeline, answered in one round trip; SQLite: nothing changes.  ``rows``: the
    most any one of them inserts; from ``COPY_AT`` on, each loads by COPY instead, unpipelined.

    Each ``executemany`` otherwise synced on its own: an intake batch's messages, recipients and
    events were three round trips (a wake-up of the backend and of this thread each).  Only for
    statements whose results nobody reads before the block ends: an error surfaces at its end,
    as SQLAlchemy's error (``driver_errors``), and the transaction is then aborted.
    """
    if conn.dialect.name != "postgresql" or rows >= COPY_AT:
        yield
        return
    raw: Any = conn.connection.dbapi_connection
    with driver_errors(conn, "pipeline"), raw.pipeline():
        yield


def in_pipeline(conn: Connection) -> bool:
    """Whether the connection's driver is inside a PostgreSQL pipeline (``pipelined``)."""
    if conn.dialect.name != "postgresql":
        return False
    raw: Any = conn.connection.dbapi_connection
    return bool(raw.pgconn.pipeline_status)


# From this many rows, ``RowInsert`` loads them by COPY on PostgreSQL.  Intake's group
# commits are mostly smaller (executemany's pipelined statements stay cheaper there).
COPY_AT = 64


class RowInsert:
    """``INSERT INTO table (…) VALUES (…)`` for rows given as dicts, straight to the driver.

    For the hottest writes (intake's group commit, the audit chain): the statement text and
    each column's conversion are prepared once per dialect and set of keys, and the rows go
    to the DB-API cursor's ``executemany`` in the caller's transaction.  That skips
    SQLAlchemy's per-execution work (compiled-cache lookup, per-row parameter processing)
    and, on PostgreSQL, the multi-row statement whose placeholders psycopg parses again on
    every execution once it has more than 50 of them: one short statement text, whatever
    the row count, stays in psycopg's cache (and becomes a prepared statement).  Values
    are converted as ``bulk_insert`` converts them.  The driver's cursor is used directly,
    so SQLAlchemy's cursor events do not see these statements.

    ``encoded``: JSON columns whose values the caller has already serialized.
    """

    def __init__(self, table: sa.Table, *, encoded: frozenset[str] = frozenset()) -> None:
        self.table = table
        self.encoded = encoded
        self._plans: dict[tuple[str, tuple[str, ...]], tuple[str, list[tuple[int, Any]]]] = {}
        self._copies: dict[tuple[str, ...], str] = {}

    def __call__(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (each with the same keys; a missing key is a KeyError)."""
        if not rows:
            return
        names = tuple(rows[0])
        plan = self._plans.get((conn.dialect.name, names)) or self._plan(conn.dialect, names)
        sql, convert = plan
        pick = operator.itemgetter(*names)
        values: list[Any] = [pick(r) for r in rows] if len(names) > 1 else [(pick(r),) for r in rows]
        if convert:
            converted = []
            for value in values:
                row = list(value)
                for i, f in convert:
                    row[i] = f(row[i])
                converted.append(row)
            values = converted
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # checked out: not None
        try:
            # (Not inside ``pipelined``: PostgreSQL runs no COPY in a pipeline.)
            if len(values) >= COPY_AT and conn.dialect.name == "postgresql" and not in_pipeline(conn):
                # Many rows (a journey round's sends): one COPY costs the server a fraction
                # of a statement per row, with the same values and triggers.
                copy_sql = self._copy_sql(conn.dialect, names)
                with driver_errors(conn, copy_sql), cursor.copy(copy_sql) as copy:
                    for value in values:
                        copy.write_row(value)
            else:
                with driver_errors(conn, sql):
                    cursor.executemany(sql, values)
        finally:
            cursor.close()

    def _copy_sql(self, dialect: sa.Dialect, names: tuple[str, ...]) -> str:
        """PostgreSQL's ``COPY … FROM STDIN`` for these columns, built once per set of keys."""
        sql = self._copies.get(names)
        if sql is None:
            prep = dialect.identifier_preparer
            quoted = ", ".join(prep.quote(n) for n in names)
            sql = self._copies[names] = f"COPY {prep.format_table(self.table)} ({quoted}) FROM STDIN"
        return sql

    def _plan(self, dialect: sa.Dialect, names: tuple[str, ...]) -> tuple[str, list[tuple[int, Any]]]:
        prep = dialect.identifier_preparer
        columns = [self.table.c[n] for n in names]  # KeyError on a name that is not a column
        mark = "%s" if dialect.name == "postgresql" else "?"
        quoted = ", ".join(prep.quote(n) for n in names)
        # Names come from the table's metadata, quoted by the dialect; values are bound.
        marks = ", ".join(mark for _ in names)
        sql = f"INSERT INTO {prep.format_table(self.table)} ({quoted}) VALUES ({marks})"  # noqa: S608
        convert = [
            (i, f)
            for i, c in enumerate(columns)
            if c.name not in self.encoded and (f := _row_converter(c.type, dialect)) is not None
        ]
        plan = (sql, convert)
        self._plans[(dialect.name, names)] = plan
        return plan


class DriverStatement:
    """A fixed statement compiled once per dialect and run on the DB-API cursor, for the
    hottest single statements (the audit head's move in every commit batch): the same SQL
    and values SQLAlchemy would send, without its per-execution work.  Only for columns
    whose values need no conversion (integers, text)."""

    def __init__(self, statement: sa.Update) -> None:
        self.statement = statement
        self._plans: dict[str, tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}

    def __call__(self, conn: Connection, params: dict[str, Any]) -> int:
        """Execute with ``params`` in the caller's transaction; the driver's row count."""
        plan = self._plans.get(conn.dialect.name) or self._plan(conn.dialect)
        sql, order, fixed = plan
        values = {**fixed, **params}
        raw: Any = conn.connection.dbapi_connection
        cursor = raw.cursor()
        # Inside ``pipelined`` the row count is known only once the pipeline has synced: a
        # nested pipeline block syncs on leaving it (what was queued before goes along).
        synced = raw.pipeline() if in_pipeline(conn) else None
        try:
            with driver_errors(conn, sql), synced or contextlib.nullcontext():
                cursor.execute(sql, values if order is None else [values[n] for n in order])
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def _plan(self, dialect: sa.Dialect) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
        compiled = self.statement.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        plan = (str(compiled), order, dict(compiled.params))
        self._plans[dialect.name] = plan
        return plan


def bind_value(conn: Connection, column: sa.Column[Any]) -> Callable[[Any], Any]:
    """What the driver is given for a value of ``column`` (its type's bind processing), for
    values a statement carries inside a JSON array of rows instead of as parameters."""
    # The dialect's own type: a TypeDecorator's generic processor stops at the driver's
    # input (a naive datetime for SQLite), not at the stored text a JSON value must carry.
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return (lambda v: v) if process is None else process


def _row_converter(type_: Any, dialect: sa.Dialect) -> Any:
    """``_converter`` without its one-value memo (a ``RowInsert`` plan is shared by threads)."""
    if isinstance(type_, sa.JSON):
        # As SQLAlchemy stores them: None is JSON ``null`` unless the column says otherwise.
        return _json if type_.none_as_null else _json_or_null
    if dialect.name == "postgresql" and not isinstance(type_, TypeDecorator):
        return None
    # The dialect's own type, as SQLAlchemy binds it: a TypeDecorator's generic processor
    # stops at a naive datetime, which sqlite3's default adapter wrote without ".000000"
    # when the microseconds were 0 (text that sorts before the same instant stored by
    # SQLAlchemy).
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _json_or_null(value: Any) -> Any:
    return "null" if value is None else _json(value)
