"""Every CLI module prints through the escaping console (``sealmail.cli_support.console``).

Rich passes ESC and the other C0/C1 controls in data straight to the terminal, so a contact
attribute holding ``ESC ] 52`` would write the operator's clipboard.  The fix lives in one
place; these checks keep a new module or command from printing around it: no ``Console(``
outside the two safe consoles, no progress bar on rich's global console, and no
``print``/``typer.echo``/``sys.stdout.write`` of data except the machine outputs listed
below with their reason.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pty
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from rich.console import Console
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

from sealmail.cli_support import console, write_lines
from sealmail.client.terminal import RemoteConsole

SRC = Path(__file__).resolve().parents[2] / "src" / "sealmail"
# Where a console may be built: the two escaping consoles themselves.
CONSOLE_HOMES = {"cli_support.py", "client/terminal.py"}
# Raw writes that must stay byte-exact for other programs, and why that is safe.
RAW_WRITES = {
    ("cli_support.py", "write_data"): "the sanitizer: escaped on a terminal, exact into a pipe",
    ("cli.py", "config_docs"): "the settings table generated from code, no stored data",
    ("cli_admin.py", "keys_signing_key"): "an ASCII-armored certificate Sealmail generated",
    ("cli_admin.py", "keys_archive"): "ASCII-armored archive keys Sealmail generated",
    ("marketing/cli_common.py", "print_json"): "json.dumps (ensure_ascii) escapes every control",
    ("portal/cli.py", "_print"): "json.dumps (ensure_ascii) escapes every control",
}
# Rich renderables that print through rich's global console unless given one.
OWN_CONSOLE = {"Progress", "Live", "Status", "Prompt", "Confirm"}
ECHOES = {("typer", "echo"), ("typer", "secho"), ("click", "echo"), ("click", "secho")}


def cli_modules() -> list[Path]:
    found = {p for p in SRC.rglob("*.py") if p.name.startswith("cli") or p.stem.endswith("_cli")}
    return sorted(found)


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _is_literal(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant)


def _calls(node: ast.AST, name: str = "<module>") -> list[tuple[str, ast.Call]]:
    """Every call with the name of the function it sits in (the innermost one)."""
    found: list[tuple[str, ast.Call]] = []
    for child in ast.iter_child_nodes(node):
        inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else name
        if isinstance(child, ast.Call):
            found.append((name, child))
        found.extend(_calls(child, inner))
    return found


def _is_std_write(f: ast.expr) -> bool:
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "write"
        and isinstance(f.value, ast.Attribute)
        and isinstance(f.value.value, ast.Name)
        and f.value.value.id == "sys"
        and f.value.attr in {"stdout", "stderr"}
    )


def _offences(path: Path) -> list[str]:
    rel = _rel(path)
    found: list[str] = []
    for name, call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
        f, where = call.func, f"{rel}:{call.lineno} ({name})"
        data = not all(map(_is_literal, call.args))
        allowed = (rel, name) in RAW_WRITES
        if getattr(f, "id", getattr(f, "attr", None)) == "Console" and rel not in CONSOLE_HOMES:
            found.append(f"{where}: Console( — use sealmail.cli_support.console()")
        elif getattr(f, "id", None) in OWN_CONSOLE and not any(k.arg == "console" for k in call.keywords):
            found.append(f"{where}: {getattr(f, 'id', '')}( without console= draws on rich's global console")
        elif isinstance(f, ast.Name) and f.id == "print" and data:
            found.append(f"{where}: print() of data — use out.print")
        elif (
            isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in ECHOES
        ):
            if data and not allowed:
                found.append(f"{where}: {f.value.id}.{f.attr} of data — use out.print")
        elif _is_std_write(f) and not allowed:
            found.append(f"{where}: sys.stdout/stderr.write — use write_data or out.print")
    return found


def test_cli_modules_print_only_through_the_escaping_console() -> None:
    modules = cli_modules()
    assert len(modules) >= 15, modules  # the discovery still finds the CLI
    offences = [o for path in modules for o in _offences(path)]
    assert offences == []


def test_every_allowed_raw_write_still_exists() -> None:
    """A stale allow-list entry would silently allow a new function of the same name."""
    for rel, name in RAW_WRITES:
        tree = ast.parse((SRC / rel).read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == name for n in ast.walk(tree)), (rel, name)


def _rendered(make: type[Console] | None = None) -> str:
    buf = io.StringIO()
    con = (make or type(console()))(
        file=buf, force_terminal=True, color_system="standard", width=200, highlight=False
    )
    table = Table("name")
    table.add_row("a\x1b]0;title\x07b")
    con.print("[bold]x\x1b[2J[/bold]", "\u202eexe.pdf", "\x9b1A\x1b]52;c;aGk=\x07")
    con.print(Text("t\x1b[1Ax", style="red"), table)
    return buf.getvalue()


def test_data_controls_are_shown_as_escapes_while_rich_styles_still_work() -> None:
    for make in (None, RemoteConsole):
        out = _rendered(make)
        assert "\x1b[1m" in out and "\x1b[31m" in out  # rich's own bold and red
        for seq in ("\x1b[2J", "\x1b]", "\x1b[1A", "\x9b", "\x07", "\u202e"):
            assert seq not in out, repr(out)
        for shown in ("x\\x1b[2J", "\\u202eexe.pdf", "\\x9b1A\\x1b]52;c;aGk=\\x07", "t\\x1b[1Ax"):
            assert shown in out, repr(out)
        assert "a\\x1b]0;title\\x07b" in out


def test_plain_rich_would_have_passed_the_controls_through() -> None:
    """Why the subclass exists: stock rich strips only BEL, BS, VT, FF and CR."""
    assert "\x1b]52;c;aGk=" in _rendered(Console)


def test_a_hyperlink_smuggled_in_as_markup_is_not_emitted() -> None:
    """``[link=…]`` in a value printed with markup would be an OSC 8 link behind other text."""
    for make in (type(console()), RemoteConsole):
        buf = io.StringIO()
        con = make(file=buf, force_terminal=True, color_system="standard", highlight=False)
        con.print("see [link=https://evil.test]https://clinic.test[/link] [bold]now[/bold]")
        assert "\x1b]8" not in buf.getvalue() and "evil.test" not in buf.getvalue()
        assert "https://clinic.test" in buf.getvalue() and "\x1b[1m" in buf.getvalue()
    plain = io.StringIO()
    Console(file=plain, force_terminal=True).print("[link=https://evil.test]x[/link]")
    assert "\x1b]8" in plain.getvalue()  # stock rich emits the link


def _written(to_tty: bool, lines: list[str]) -> bytes:
    if not to_tty:
        buf = io.StringIO()
        with redirect_stdout(buf):
            assert write_lines(lines, None) is False
        return buf.getvalue().encode()
    primary, secondary = pty.openpty()
    with open(secondary, "w", encoding="utf-8") as tty, redirect_stdout(tty):
        write_lines(lines, None)
    chunks = []
    try:
        while chunk := os.read(primary, 4096):  # until the closed terminal reports EIO
            chunks.append(chunk)
    except OSError:
        pass
    finally:
        os.close(primary)
    return b"".join(chunks)


def test_a_stdout_export_is_escaped_on_a_terminal_and_exact_in_a_pipe() -> None:
    lines = ["email,city\r\n", "pat@example.net,\x1b]52;c;aGk=\x07Aus\rtin\u202e\r\n"]
    assert _written(False, lines) == "".join(lines).encode()  # byte-exact for the next program
    shown = _written(True, lines)
    assert b"\x1b" not in shown and "\u202e".encode() not in shown
    assert b"\\x1b]52;c;aGk=\\x07Aus\\x0dtin\\u202e\r" in shown  # a CR before LF is kept


LOGS = """
import logging, structlog
from sealmail.config import Settings
from sealmail.runtime import configure_logging
configure_logging(Settings.model_construct(log_level="info", log_format="{fmt}"))
structlog.get_logger().warning("peer.reply", text="\\x1b]52;c;aGk=\\x07 ok \\u202e")
logging.getLogger("lib").warning("peer said %s", "\\x1b[2J\\x9b1A")
def deliver(body):
    raise ValueError("bad header \\x1b]0;owned\\x07")
try:
    deliver("Dear Pat, your HIV test")
except ValueError:
    structlog.get_logger().exception("delivery.failed")
"""


def test_sealmail_serve_logs_escape_what_peers_sent() -> None:
    """``sealmail serve`` logs to the operator's terminal too: a remote MTA's reply or a
    report's host name is data, as much as a contact attribute is."""
    for fmt in ("console", "json"):
        got = subprocess.run(
            [sys.executable, "-c", LOGS.format(fmt=fmt)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SRC.parent)},
            timeout=60,
            check=True,
        )
        both = got.stdout + got.stderr
        for raw in ("\x1b", "\x9b", "\u202e", "\x07"):
            assert raw not in both, (fmt, both)
        assert "peer said \\x1b[2J\\x9b1A" in got.stderr, got.stderr
        if fmt == "console":  # a traceback quoting data is escaped too
            assert "bad header \\x1b]0;owned\\x07" in got.stdout, got.stdout
            assert "HIV" not in got.stdout  # a frame's locals (a message body) are not logged
        if fmt == "json":  # JSON escapes controls itself and stays exact for log shippers
            assert json.loads(got.stdout.splitlines()[0])["text"] == "\x1b]52;c;aGk=\x07 ok \u202e"
        else:
            assert "\\x1b]52;c;aGk=\\x07 ok \\u202e" in got.stdout, got.stdout


def test_a_stray_closing_tag_in_data_prints_the_line_instead_of_crashing() -> None:
    """Data inside a markup f-string (``f"[red]error:[/red] {detail}"``) can hold "[/x]"; rich
    raised MarkupError, so the command died with a traceback instead of saying what failed."""
    for make in (type(console()), RemoteConsole):
        buf = io.StringIO()
        con = make(file=buf, force_terminal=False, width=200, highlight=False)
        con.print("[red]error:[/red] no contact '[/x]\x1b[2J@example.net'")
        assert buf.getvalue() == "[red]error:[/red] no contact '[/x]\\x1b[2J@example.net'\n"
    with pytest.raises(MarkupError):
        Console(file=io.StringIO()).print("[red]error:[/red] [/x]")
