"""Issue 13: no function over ~60 lines in the request or delivery path.

A function's length is its own lines, decorators to last line, less the nested functions
and classes it defines (each measured on its own): a router factory is a list of routes,
and each route must be short, not the list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "sealmail"
LIMIT = 60
# The request and delivery path: the roles, the features a message crosses, and runtime.py.
PATH_PACKAGES = ("intake", "delivery", "messages", "secureline", "portal", "files", "webhooks")
PATH_MODULES = ("runtime.py",)
# ``path:qualname`` -> why it may be longer.  Empty: keep it so.
ALLOWED: dict[str, str] = {}

Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _span(node: Def) -> int:
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    assert node.end_lineno is not None
    return node.end_lineno - first + 1


def _nested(node: ast.AST) -> Iterator[Def]:
    """The defs directly inside ``node`` (not those inside them)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, Def):
            yield child
        else:
            yield from _nested(child)


def own_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return _span(node) - sum(_span(inner) for inner in _nested(node))


def _functions(
    tree: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for node in _nested(tree):
        name = f"{prefix}{node.name}"
        if not isinstance(node, ast.ClassDef):
            yield name, node
        yield from _functions(node, f"{name}.")


def _path_files() -> Iterator[Path]:
    for package in PATH_PACKAGES:
        yield from sorted((SRC / package).rglob("*.py"))
    for module in PATH_MODULES:
        yield SRC / module


def test_no_long_function_in_the_request_or_delivery_path() -> None:
    long = {
        f"{path.relative_to(SRC).as_posix()}:{name}": own_lines(node)
        for path in _path_files()
        for name, node in _functions(ast.parse(path.read_text(encoding="utf-8")))
        if own_lines(node) > LIMIT
    }
    over = sorted(f"{where} ({n} lines)" for where, n in long.items() if where not in ALLOWED)
    assert over == [], f"split these into named steps (≤ {LIMIT} lines each): {over}"
    stale = sorted(set(ALLOWED) - set(long))
    assert stale == [], f"no longer long: remove from ALLOWED: {stale}"


def test_the_measure_counts_a_long_body_and_not_nested_routes() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT + 1))
    [(_, flat)] = list(_functions(ast.parse(f"def f() -> None:\n{body}\n")))
    assert own_lines(flat) == LIMIT + 2
    routes = "\n".join(f"    @r.get('/{i}')\n    def route{i}() -> None:\n        pass" for i in range(30))
    found = dict(_functions(ast.parse(f"def router(r):\n{routes}\n    return r\n")))
    assert own_lines(found["router"]) == 2 and own_lines(found["router.route0"]) == 3
