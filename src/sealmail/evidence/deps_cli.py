"""``sealmail evidence deps``: the dependency audit on the command line (``dependencies.py``).

``--refresh`` asks the OSV API about every lock-file pin now and stores the answer; without it
the stored answer is shown with its time.  The exit code gates a build: 1 on a finding at or
above ``--fail-on``, 2 when there is nothing to show or the fetch failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sealmail.cli_support import SessionOpener, console, err
from sealmail.evidence import supply
from sealmail.evidence.osv import Severity
from sealmail.evidence.service import Evidence

out = console()
session: SessionOpener[Evidence] = SessionOpener("evidence deps")


def deps_cmd(
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the OSV API now (osv_url) and store the answer.")
    ] = False,
    lock: Annotated[Path | None, typer.Option(help="The lock file (default: as the packs use).")] = None,
    fail_on: Annotated[
        str, typer.Option(help="Exit 1 on a finding at or above: low | moderate | high | critical | never.")
    ] = "high",
) -> None:
    """The dependency audit: each lock-file pin against the OSV advisories (id, package, version,
    fixed in, severity), as of when they were fetched.  Exit 1 on findings at or above --fail-on
    (an advisory without a severity counts as high); 2 when there are no advisories to show."""
    threshold = None if fail_on == "never" else _severity(fail_on)
    with session("*") as (evidence, _):
        deps = evidence.dependencies
        lock_text = _lock_text(lock) if lock is not None else deps.lock_text()
        if refresh:
            if lock_text is None:
                err.print("[red]error:[/red] no lock file to audit: pass --lock FILE")
                raise typer.Exit(2)
            deps.refresh(lock_text)
        shown = deps.audit_view(lock_text)
    if shown is None:
        err.print(f"[red]error:[/red] {supply.NO_VULN_DB}", soft_wrap=True)
        raise typer.Exit(2)
    out.print(shown.note, soft_wrap=True)
    out.print(f"{shown.checked} pins checked; {len(shown.findings)} advisories", soft_wrap=True)
    for pin in shown.not_checked:
        out.print(f"not checked (not in that answer): {pin.name}=={pin.version}", soft_wrap=True)
    for f in shown.findings:
        fixed = ", ".join(f.fixed_in) or "no fix"
        out.print(f"{f.id}  {f.package} {f.version}  fixed in {fixed}  {f.severity.value}", soft_wrap=True)
    if threshold is not None and shown.at_or_above(threshold):
        err.print(f"{len(shown.at_or_above(threshold))} advisories at or above {threshold.value}")
        raise typer.Exit(1)


def _severity(text: str) -> Severity:
    try:
        return Severity(text.lower())
    except ValueError as exc:
        err.print("[red]error:[/red] --fail-on: low, moderate, high, critical or never")
        raise typer.Exit(2) from exc


def _lock_text(lock: Path) -> str:
    try:
        return lock.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] {lock}: {exc}")
        raise typer.Exit(2) from exc
