"""Statements run on the DB-API cursor with SQLAlchemy's own SQL and value conversions.

``DriverQuery`` compiles a SQLAlchemy statement once per dialect (and number of items in
its expanding lists) and then runs it on the driver's cursor in the caller's transaction,
as ``db.RowInsert`` and ``db.DriverStatement`` do for INSERTs and fixed UPDATEs.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.store.db import converted, driver_errors

# Plans kept per statement (a full table is emptied).
_PLANS_KEPT = 1024


class DriverQuery:
    """A fixed statement compiled once per dialect and list lengths and run on the DB-API
    cursor (``before_cursor_execute`` listeners are still told): SQLite's side of the
    worker's flush (its claim, lease check, recipients update, event numbers and message
    load), whose few rows made SQLAlchemy's per-execution work (compiled-cache lookup,
    expanding ``IN`` lists, per-parameter and per-row processing objects) most of its cost.
    The SQL, parameter values (through each type's bind processor) and row values (through
    each result type's processor: UTC datetimes, JSON) are those SQLAlchemy itself would use;
    rows come back as tuples in the statement's column order.
    ``many``: an ``executemany`` of a statement without expanding lists (no rows back).
    """

    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, tuple[tuple[str, int], ...]], _QueryPlan] = {}

    def __call__(self, conn: Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Execute with ``params`` (lists for expanding parameters) in the caller's transaction."""
        sizes = tuple((k, len(v)) for k, v in params.items() if isinstance(v, list))
        plan = self._plans.get((conn.dialect.name, sizes)) or self._plan(conn.dialect, sizes, params)
        values = plan.values(params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # checked out: not None
        try:
            _announce(conn, cursor, plan.sql, values, many=False)
            with driver_errors(conn, plan.sql):
                cursor.execute(plan.sql, values)
                rows = cursor.fetchall() if cursor.description is not None else []
        finally:
            cursor.close()
        return converted(list(rows), plan.result)

    def many(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """``executemany`` with one parameter dict a row (same keys, no lists)."""
        if not rows:
            return
        plan = self._plans.get((conn.dialect.name, ())) or self._plan(conn.dialect, (), rows[0])
        values = [plan.values(r) for r in rows]
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]  # checked out: not None
        try:
            _announce(conn, cursor, plan.sql, values, many=True)
            with driver_errors(conn, plan.sql):
                cursor.executemany(plan.sql, values)
        finally:
            cursor.close()

    def _plan(
        self, dialect: sa.Dialect, sizes: tuple[tuple[str, int], ...], params: dict[str, Any]
    ) -> _QueryPlan:
        compiled: Any = self.statement.compile(dialect=dialect)
        if not compiled.positional:
            raise ValueError("DriverQuery takes positional dialects (SQLite) only")
        state = compiled.construct_expanded_state(compiled.construct_params(params))
        processors = compiled._bind_processors  # each bind parameter's type's processor, by name
        origin = {
            new: (old, i) for old, news in state.parameter_expansion.items() for i, new in enumerate(news)
        }
        picks: list[tuple[str, int, Any, Any]] = []  # (name, index or -1 or -2 for fixed, value, processor)
        for name in state.positiontup:
            old, index = origin.get(name, (name, -1))
            process = processors.get(old)
            if old not in params:  # a literal of the statement: the same value every time
                picks.append((name, -2, state.parameters[name], process))
            else:
                picks.append((old, index, None, process))
        result = [
            (i, f)
            for i, column in enumerate(compiled._result_columns)
            if (f := column.type._cached_result_processor(dialect, None)) is not None
        ]
        plan = _QueryPlan(state.statement, picks, result)
        if len(self._plans) >= _PLANS_KEPT:  # one a list length: bounded by the flush's size anyway
            self._plans.clear()
        self._plans[(dialect.name, sizes)] = plan
        return plan


def _announce(conn: Connection, cursor: Any, sql: str, values: Any, *, many: bool) -> None:
    """SQLAlchemy's ``before_cursor_execute`` for a statement run on the driver, when anyone
    listens (statement logs, the tests' fault injection): they see it as any other."""
    listeners = conn.dispatch.before_cursor_execute
    if listeners:
        listeners(conn, cursor, sql, values, None, many)


class _QueryPlan:
    __slots__ = ("picks", "result", "sql")

    def __init__(
        self, sql: str, picks: list[tuple[str, int, Any, Any]], result: list[tuple[int, Any]]
    ) -> None:
        self.sql = sql
        self.picks = picks
        self.result = result

    def values(self, params: dict[str, Any]) -> list[Any]:
        out = []
        for name, index, fixed, process in self.picks:
            if index == -2:
                value = fixed
            else:
                value = params[name] if index < 0 else params[name][index]
            out.append(value if process is None else process(value))
        return out
