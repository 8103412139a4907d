"""Issue 13: the SMTP and delivery side stays in rooms of a readable size.

No module over ~500 lines and no function over ~60 lines in the listeners, the report
intake and the delivery path (the request and delivery path of docs/layout.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sealmail"
PACKAGES = ("intake/smtp", "smtpd", "bounces", "delivery")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60

MODULES = sorted(p for package in PACKAGES for p in (SRC / package).glob("*.py"))


def test_the_packages_exist() -> None:
    assert {p.parent.relative_to(SRC).as_posix() for p in MODULES} == set(PACKAGES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SRC).as_posix())
def test_module_is_small(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(SRC).as_posix())
def test_functions_are_short(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({(node.end_lineno or node.lineno) - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{path.name}: {', '.join(long)}"


def test_smtp_gateway_has_no_inbound_branches() -> None:
    # The submission handler and the report listener are separate classes (issue 13).
    for path in (SRC / "intake" / "smtp").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "self.inbound" not in text and "inbound=" not in text, path.name
