"""What the ``sealmail marketing …`` command modules share: the session, the consoles, and
how input files, validation errors and output formats reach the terminal.

Errors never show a traceback: unreadable or malformed input, a body the schema refuses, or
a ``ValidationFailed`` from the services prints every field's problem and exits 2; a
``NotFound`` prints the detail and where to look the right id up, and exits 2 too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import pydantic
import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sealmail.cli_support import SessionOpener, console
from sealmail.errors import NotFound, ValidationFailed
from sealmail.marketing.attributes import BASIC_CLASSES
from sealmail.marketing.service import Marketing
from sealmail.tenancy.service import Principal

out = console()
# Progress bars and errors go to stderr, so a CSV or JSON on stdout stays clean to pipe.
err = console(stderr=True)
session: SessionOpener[Marketing] = SessionOpener("marketing")
TenantOpt = Annotated[str | None, typer.Option(help="Tenant id (needed when several exist).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="File to write (created 0600); default stdout.")
]
ACTOR = "cli"
MAX_INPUT_BYTES = 1 << 20  # a segment, campaign, journey or authorization is a few KiB
M = TypeVar("M", bound=pydantic.BaseModel)


def fail(message: str, hint: str | None = None, code: int = 2) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True)
    if hint:
        err.print(hint, soft_wrap=True, markup=False)
    raise typer.Exit(code)


def operator(tenant_id: str) -> Principal:
    """The CLI's principal: an operator on the server, with every scope (as an admin key)."""
    return Principal(tenant_id, ACTOR, frozenset({"admin", "send", "read"}))


@contextmanager
def opened(tenant: str | None, hint: str | None = None) -> Iterator[tuple[Marketing, str]]:
    """``session`` with every field of a ``ValidationFailed`` printed, and ``hint`` (how to
    find the right id or name) after a ``NotFound``."""
    with session(tenant) as (mk, tenant_id):
        try:
            yield mk, tenant_id
        except ValidationFailed as exc:
            problems = exc.extra.get("errors") or []
            err.print(f"[red]error:[/red] {exc.detail}", soft_wrap=True)
            for p in problems:
                err.print(f"  {p.get('field')}: {p.get('message')}", soft_wrap=True, markup=False)
            err.print("fix the input and run the command again", markup=False)
            raise typer.Exit(2) from exc
        except NotFound as exc:
            fail(exc.detail, hint)


def read_json(path: Path, what: str) -> Any:
    """A JSON document from ``path`` (``-``: stdin), at most 1 MiB; exit 2 naming the problem."""
    try:
        if str(path) == "-":
            raw = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            with path.open("rb") as fh:
                raw = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}", f"check the path of the {what} file")
    if len(raw) > MAX_INPUT_BYTES:
        fail(f"{path} is larger than {MAX_INPUT_BYTES} bytes", f"a {what} is a few KiB; check the file")
    return parse_json(raw, what, str(path))


def parse_json(raw: bytes | str, what: str, where: str = "the argument") -> Any:
    try:
        # Decoded here, not by json.loads: it would guess UTF-16 or UTF-32 from the bytes.
        return json.loads(raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw)
    except UnicodeDecodeError:
        fail(f"{where} is not UTF-8 text", f"save the {what} as UTF-8 JSON")
    except json.JSONDecodeError as exc:
        fail(
            f"{where} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            f"fix the {what} JSON and run the command again",
        )
    except RecursionError:
        fail(f"{where} nests too deeply to read", f"a {what} nests a few levels at most")


def rule_input(rule: str | None, file: Path | None, what: str = "segment rule") -> Any:
    """A rule from ``--rule JSON`` or ``--file PATH`` (exactly one)."""
    if (rule is None) == (file is None):
        fail(f"give the {what} with --rule JSON or --file PATH (one of them)")
    return parse_json(rule, what, "--rule") if rule is not None else read_json(file, what)  # type: ignore[arg-type]  # one is set


def checked(model: type[M], data: Any, what: str) -> M:
    """``data`` validated by the API's own request schema; exit 2 listing each problem."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        err.print(f"[red]error:[/red] the {what} is invalid ({exc.error_count()} problem(s))")
        for e in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in e["loc"]) or "(document)"
            err.print(f"  {where}: {e['msg']}", soft_wrap=True, markup=False)
        err.print(f"fix the {what} and run the command again", markup=False)
        raise typer.Exit(2) from exc


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def contact_id(mk: Marketing, tenant_id: str, ref: str) -> str:
    """A contact by email or id (``ctc_…``); another tenant's id is not found."""
    if "@" in ref:
        found = mk.contacts.find(tenant_id, ref)
        if found is None:
            fail(f"no contact with the email {ref!r}", "import or save the contact first")
        return found
    try:
        return str(mk.contacts.get(tenant_id, ref, BASIC_CLASSES)["id"])
    except NotFound:
        fail(f"no contact {ref!r}", "give the contact's email or its id (ctc_…)")


def id_table(*columns: str, **kw: Any) -> Table:
    """A table whose first column is an id, never cut short: it is what the next command takes."""
    table = Table(**kw)
    table.add_column("id", no_wrap=True, min_width=30)
    for name in columns:
        table.add_column(name)
    return table


def figures_table(first: str, metrics: Iterable[str], **kw: Any) -> Table:
    """A table of counts narrow enough for 80 columns: short headers, no vertical rules."""
    short = {
        "queued": "queue",
        "skipped": "skip",
        "delivered": "deliv",
        "bounced": "bounce",
        "complained": "compl",
        "unsubscribed": "unsub",
        "opened": "open",
        "clicked": "click",
        "converted": "conv",
    }
    table = Table(first, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True, **kw)
    for m in metrics:
        table.add_column(short.get(m, m), justify="right")
    return table


def progress(what: str) -> Progress:
    columns = [TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, console=err, transient=False)


def counted(lines: Iterable[str], tick: Callable[[int], None]) -> Iterator[str]:
    """``lines`` passed through, ``tick(1)`` per line after the header."""
    first = True
    for line in lines:
        yield line
        if first:
            first = False
        else:
            tick(1)
