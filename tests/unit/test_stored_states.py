"""Issue 13: a stored state is a ``StrEnum`` member, never a bare string in code.

An AST walk over every server module: a name or attribute ending in ``status`` or ``state``
(``row.status``, ``cp.c.status``, ``campaign_status``, ``row["state"]``) may not be compared
with a string literal (``==``, ``!=``, ``in``/``not in`` a literal collection or a module
constant made of string literals, SQLAlchemy's ``.in_(…)``), nor written as one
(``.values(status="sent")``, ``{"state": "active"}``).  Compare with and write the feature's
enum (``forms.states``, ``webhooks.states``, ``marketing.states``, ``evidence.registers``,
``domain.statuses`` …): its values are the stored strings, so rows and clients are unchanged.

``WIRE_FORMATS`` lists the few places where the string is a wire format, not a stored state;
each says why, and an entry that no longer matches anything fails the test.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "sealmail"
SUFFIXES = ("status", "state")

# ``path:expression`` (as ``ast.unparse`` prints it) → why the literal stays.
WIRE_FORMATS: dict[str, str] = {
    "intake/api/app.py:{'status': 'ok'}": "the /healthz body load balancers read, not a stored state",
}


def _text(node: ast.AST | None) -> str | None:
    """The string a literal spells, else ``None``."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_str(node: ast.AST | None) -> bool:
    return _text(node) is not None


def _has_str(node: ast.AST) -> bool:
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_str(e) for e in node.elts)
    return _is_str(node)


def _named(node: ast.AST) -> str | None:
    """The name a state is read through: ``x``, ``x.status``, ``x["status"]``, ``x.get("status")``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _text(node.slice)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and node.args
    ):
        return _text(node.args[0])
    return None


def _stateish(node: ast.AST) -> bool:
    name = _named(node)
    return name is not None and name.lower().endswith(SUFFIXES)


def _literal_constants(tree: ast.Module) -> set[str]:
    """Module-level names bound to a collection of string literals (``SETTLED = ("a", "b")``)."""
    found: set[str] = set()
    value: ast.expr | None
    for node in tree.body:
        if isinstance(node, ast.Assign):
            value, targets = node.value, node.targets
        elif isinstance(node, ast.AnnAssign):
            value, targets = node.value, [node.target]
        else:
            continue
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.args:
            value = value.args[0]  # frozenset({...}), tuple([...])
        if value is None or not isinstance(value, ast.Tuple | ast.List | ast.Set) or not _has_str(value):
            continue
        found |= {t.id for t in targets if isinstance(t, ast.Name)}
    return found


def _literal(node: ast.AST, constants: set[str]) -> bool:
    return _has_str(node) or (isinstance(node, ast.Name) and node.id in constants)


def _bare_states(tree: ast.Module) -> Iterator[ast.AST]:
    """Every comparison with, filter on, or write of a state as a string literal."""
    constants = _literal_constants(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for op, left, right in zip(node.ops, sides, sides[1:], strict=False):
                if isinstance(op, ast.Eq | ast.NotEq) and (
                    (_stateish(left) and _is_str(right)) or (_stateish(right) and _is_str(left))
                ):
                    yield node
                elif isinstance(op, ast.In | ast.NotIn) and _stateish(left) and _literal(right, constants):
                    yield node
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # SQLAlchemy: cp.c.status.in_(("a", "b")) / .not_in(…)
            if node.func.attr in {"in_", "not_in"} and _stateish(node.func.value):
                if node.args and _literal(node.args[0], constants):
                    yield node
        if isinstance(node, ast.Call):
            # A write: .values(status="sent"), insert(...).values(state="active"), Row(status="x")
            if any(k.arg and k.arg.lower().endswith(SUFFIXES) and _is_str(k.value) for k in node.keywords):
                yield node
        elif isinstance(node, ast.Dict):
            pairs = zip(node.keys, node.values, strict=True)
            if any((_text(k) or "").lower().endswith(SUFFIXES) and _is_str(v) for k, v in pairs):
                yield node


def _found(root: Path = SRC) -> dict[str, int]:
    """``path:expression`` → line of every bare state in the server (the client is its own)."""
    found: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] == "client":
            continue
        for node in _bare_states(ast.parse(path.read_text())):
            found.setdefault(f"{rel.as_posix()}:{ast.unparse(node)}", getattr(node, "lineno", 0))
    return found


JINJA = re.compile(r"\{[{%].*?[%}]\}", re.S)
BARE_IN_JINJA = re.compile(
    r"\w*(?:status|state)\s*(?:==|!=)\s*[\"']"
    r"|[\"']\s*(?:==|!=)\s*[\w.]*(?:status|state)\b"
    r"|\w*(?:status|state)\s+(?:not\s+)?in\s+[\[(]\s*[\"']"
)


def _bare_in_templates(text: str) -> list[str]:
    return [block for block in JINJA.findall(text) if BARE_IN_JINJA.search(block)]


def test_templates_compare_states_with_enums() -> None:
    bare = [
        f"{path.relative_to(SRC)}: {block[:100]}"
        for path in sorted(SRC.rglob("*"))
        if path.suffix in {".html", ".py"} and "client" not in path.relative_to(SRC).parts
        for block in _bare_in_templates(path.read_text())
    ]
    assert bare == [], f"a template compares a state with a bare string: hand it the enum: {bare}"


def test_the_template_check_sees_a_bare_state() -> None:
    assert _bare_in_templates('{% if r.state != "revoked" %}x{% endif %}')
    assert _bare_in_templates("{{ 'a' if e.status == 'active' else 'b' }}")
    assert _bare_in_templates('{% if c.status in ["starting", "sending"] %}')
    assert not _bare_in_templates("{% if r.state != PlainState.REVOKED %}{{ e.status }}{% endif %}")


def test_stored_states_are_compared_and_written_as_enums() -> None:
    bare = {k: line for k, line in _found().items() if k not in WIRE_FORMATS}
    assert bare == {}, (
        "a state compared with or written as a bare string: use the feature's StrEnum "
        "(its values are the stored strings): "
        + "; ".join(f"{k.split(':', 1)[0]}:{line}: {k.split(':', 1)[1][:100]}" for k, line in bare.items())
    )


def test_the_wire_format_list_holds_only_what_still_exists() -> None:
    stale = sorted(WIRE_FORMATS.keys() - _found().keys())
    assert stale == [], f"gone (or changed): remove from WIRE_FORMATS: {stale}"
    assert all(len(why) > 10 for why in WIRE_FORMATS.values())


def test_the_walk_sees_each_form_of_bare_state() -> None:
    source = """
SETTLED = ("delivered", "held")
RUNNING = frozenset({"sending"})
if row.status == "draft": pass
if "paused" != campaign_status: pass
if row["state"] in ("a", "b"): pass
if job.get("status") not in SETTLED: pass
q = sa.select(t).where(t.c.status.in_(RUNNING))
q = sa.select(t).where(t.c.state.not_in(["x"]))
conn.execute(sa.update(t).values(status="sent"))
row = {"state": "active"}
"""
    seen = [ast.unparse(n) for n in _bare_states(ast.parse(source))]
    assert len(seen) == 8, seen


def test_the_walk_lets_enums_and_other_names_pass() -> None:
    source = """
if row.status == CampaignStatus.DRAFT: pass
if row.status in PAUSABLE: pass
q = t.c.status.in_(SETTLED)
conn.execute(sa.update(t).values(status=SendState.SENT, reason="x"))
if response.status_code == 404: pass
if kind == "recorded": pass
row = {"state": state, "kind": "x"}
"""
    assert list(_bare_states(ast.parse(source))) == []
