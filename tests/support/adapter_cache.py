"""FastAPI's pydantic adapters, built once per pytest worker for each distinct parameter.

FastAPI builds a ``TypeAdapter`` (a pydantic schema and its compiled validator) for every
parameter, body and response model of every route, twice per app: when the route is declared
and again the first time a request goes through its router (FastAPI >= 0.16x builds each
route's "effective context" lazily).  The API's app (~180 routes) and its first request cost
0.37 s of CPU, two thirds of it in those adapters, and most API, console and portal tests build
an app of their own.
The adapter depends only on the annotated type and the field's attributes, so one built for
``Annotated[int, Query(ge=1, le=500)]`` in one test validates exactly as a fresh one would in
the next; what a test gets is still FastAPI's and pydantic's own validator, only not rebuilt.

A field whose description cannot be compared by value gets its adapter built as usual: a
``default_factory`` closure, a ``json_schema_extra`` dict, unhashable metadata, and an annotation
still holding a forward reference (its text is equal in two apps while the names it refers to,
a closure's variables, may not be).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, ForwardRef, Literal, get_args, get_origin

from fastapi._compat import v2
from pydantic import TypeAdapter

# Classes defined inside a per-app function would each add entries; past this many the cache
# starts again rather than grow for the whole run.
LIMIT = 20_000


def _described(value: Any) -> tuple[type, Any]:
    # The type too: 0 == False and 1 == True, but the adapters they describe may differ.
    return (type(value), value)


def _resolved(annotation: Any) -> bool:
    if isinstance(annotation, str | ForwardRef):
        return False
    if get_origin(annotation) is Literal:
        return True
    return all(_resolved(arg) for arg in get_args(annotation))


def _key(field: v2.ModelField) -> Hashable | None:
    described = v2.asdict(field.field_info)
    if not _resolved(described["annotation"]):
        return None
    config = field.config or {}
    key = (
        described["annotation"],
        tuple(_described(m) for m in described["metadata"]),
        tuple((name, *_described(v)) for name, v in described["attributes"].items()),
        tuple(sorted((name, *_described(v)) for name, v in config.items())),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def install() -> None:
    """Wrap ``ModelField.__post_init__`` (the one place FastAPI builds a field's adapter)."""
    build: Callable[[v2.ModelField], None] = v2.ModelField.__post_init__
    assert getattr(build, "__wrapped__", None) is None, "installed twice"
    adapters: dict[Hashable, TypeAdapter[Any]] = {}

    def post_init(field: v2.ModelField) -> None:
        key = _key(field)
        if key is None:
            build(field)
            return
        adapter = adapters.get(key)
        if adapter is None:
            build(field)
            if len(adapters) >= LIMIT:
                adapters.clear()
            adapters[key] = field._type_adapter
        else:
            field._type_adapter = adapter

    post_init.__wrapped__ = build  # type: ignore[attr-defined]
    v2.ModelField.__post_init__ = post_init  # type: ignore[method-assign]
