"""Contact values as PostgreSQL ``COPY … FROM STDIN`` text, built a row at a time by hand.

An import writes a thousand new contacts a chunk; going through a dict per row, the
column types' bind processors and psycopg's per-row ``write_row`` cost more client time
than the database spends storing them.  The text format is simple enough to write
directly: fields separated by tabs, rows by newlines, ``\\N`` for NULL, and a backslash,
tab, newline or carriage return inside a value escaped with a backslash
(https://www.postgresql.org/docs/current/sql-copy.html, "Text Format").
"""

from __future__ import annotations

import re
from json.encoder import encode_basestring_ascii
from typing import Any

NULL = "\\N"
_SPECIAL = re.compile(r"[\\\t\n\r]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def field(text: str | None) -> str:
    """One text value as a COPY field (most values have nothing to escape)."""
    if text is None:
        return NULL
    return text.translate(_ESCAPES) if _SPECIAL.search(text) else text


def bytea(value: bytes | None) -> str:
    """A ``bytea`` value in hex form; its backslash is escaped for the COPY text."""
    return NULL if value is None else "\\\\x" + value.hex()


def json_object(values: dict[str, Any]) -> str:
    """A flat object of attribute values (str, int, float, bool: what ``attributes.coerce``
    returns) as JSON text for a COPY field; what ``json.dumps`` writes, at a third of the
    cost.  Names are declared attribute names (``[a-z][a-z0-9_]*``), so they need no
    escaping; string values go through the C escaper ``json.dumps`` uses, whose output is
    ASCII with no tab or newline, so a backslash is all COPY needs escaped."""
    if not values:
        return "{}"
    parts = []
    for name, value in values.items():
        kind = type(value)
        if kind is str:
            text = encode_basestring_ascii(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int or kind is float:
            # A coerced number is finite, so its repr is a JSON number.
            text = repr(value)
        else:
            raise TypeError(f"attribute {name!r} holds a {kind.__name__}, not a coerced value")
        parts.append(f'"{name}": {text}')
    text = "{" + ", ".join(parts) + "}"
    return text.replace("\\", "\\\\") if "\\" in text else text
