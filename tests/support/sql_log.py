"""Record the SQL an engine runs (SQLAlchemy's ``before_cursor_execute`` event)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class SqlLog:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def reads_of(self, table: str) -> int:
        """How many statements read ``table`` (``FROM``/``JOIN`` it, any dialect's quoting)."""
        pattern = re.compile(rf'\b(FROM|JOIN)\s+"?{re.escape(table)}"?(\s|$|,)', re.IGNORECASE)
        return sum(1 for s in self.statements if pattern.search(s))

    def claims(self) -> int:
        """How many queue claims ran (``UPDATE recipients … RETURNING``; a record sets last_reason)."""
        return sum(
            1
            for s in self.statements
            if s.startswith("UPDATE recipients SET status") and "RETURNING" in s and "last_reason" not in s
        )


@contextmanager
def sql_log(engine: Engine) -> Iterator[SqlLog]:
    log = SqlLog()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        log.statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield log
    finally:
        event.remove(engine, "before_cursor_execute", record)
