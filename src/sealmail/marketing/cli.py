"""``sealmail marketing …``: attributes, contact import/export, consent, campaigns, journeys.

Commands go through the same services as the API, with actor ``cli``, so they are audited
as the API's are; the CLI is an operator's tool on the server, so it may use every PHI class
(as an ``admin`` key does).  ``contacts show`` prints clinical and sensitive values only
with ``--reveal``, which is audited.  The groups live beside this module: ``cli_audience``
(contacts, consent history, authorizations, segments, lists), ``cli_sends`` (campaigns,
caps, conversions) and ``cli_journeys``; ``cli_common`` holds what they share.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sealmail.cli_support import write_lines
from sealmail.marketing import cli_audience, cli_journeys, cli_sends, imports
from sealmail.marketing.attributes import ALL_CLASSES
from sealmail.marketing.cli_common import TenantOpt, contact_id, opened, out, session

__all__ = ["marketing_app", "session"]

marketing_app = typer.Typer(
    no_args_is_help=True, help="Secure marketing: contacts, consent, segments, campaigns, journeys."
)


@marketing_app.command("define")
def define_cmd(
    name: str,
    type_: Annotated[str, typer.Option("--type", help="text, number, date, boolean or choice.")],
    phi_class: Annotated[str, typer.Option(help="none, demographic, clinical or sensitive.")],
    choice: Annotated[list[str] | None, typer.Option(help="A choice (repeat) for choice attributes.")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Declare a typed contact attribute with its PHI class."""
    with session(tenant) as (mk, tenant_id):
        d = mk.attributes.define(
            tenant_id, name=name, type_=type_, phi_class=phi_class, choices=choice, actor="cli"
        )
        out.print(f"declared {d['name']} ({d['type']}, {d['phi_class']})")


def _count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


@marketing_app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    tenant: TenantOpt = None,
    errors: Annotated[int, typer.Option(help="How many row errors to print.")] = 20,
) -> None:
    """Import contacts from a CSV file (upsert by email), with a progress bar."""
    total = _count_lines(path)
    with session(tenant) as (mk, tenant_id), path.open(encoding="utf-8-sig", newline="") as fh:
        columns = [TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=out, transient=False) as bar:
            task = bar.add_task("rows", total=total)
            try:
                report = mk.importer.run(
                    tenant_id, imports.csv_rows(fh), actor="cli", progress=lambda n: bar.advance(task, n)
                )
            except UnicodeDecodeError as exc:
                out.print("[red]error:[/red] the file is not UTF-8 text")
                raise typer.Exit(2) from exc
        out.print(
            f"{report['rows']} rows: {report['created']} created, {report['updated']} updated, "
            f"{report['failed']} failed (import {report['id']})"
        )
        for e in report["errors"][:errors]:
            out.print(f"  row {e['row']}: {e['field']} {e['message']}")
        if report["failed"]:
            raise typer.Exit(1)


@marketing_app.command("export")
def export_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Every contact as CSV (every PHI class: the file is created 0600)."""
    with session(tenant) as (mk, tenant_id):
        lines = mk.contacts.export_csv(tenant_id, ALL_CLASSES, actor="cli")
        if write_lines(lines, output):
            out.print(f"written to {output}")


@marketing_app.command("consent")
def consent_cmd(
    email: Annotated[str, typer.Argument(help="The contact's email or id (ctc_…).")],
    purpose: Annotated[str, typer.Option(help="treatment, operations, marketing or fundraising.")],
    action: Annotated[str, typer.Option(help="grant or revoke.")],
    channel: Annotated[str, typer.Option()] = "email",
    evidence: Annotated[str | None, typer.Option(help="A reference (form id, call log).")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Append a grant or revoke to a contact's consent ledger."""
    with opened(tenant) as (mk, tenant_id):
        state = mk.consent.change(
            tenant_id,
            contact_id(mk, tenant_id, email),
            purpose=purpose,
            channel=channel,
            action=action,
            source="cli",
            actor="cli",
            evidence=evidence,
        )
        out.print(json.dumps(state["consents"]))


marketing_app.command("consent-history")(cli_audience.consent_history_cmd)
marketing_app.command("authorize")(cli_audience.authorize_cmd)
marketing_app.command("authorizations")(cli_audience.authorizations_cmd)


@marketing_app.command("run-journeys")
def run_journeys_cmd(
    worker: Annotated[str, typer.Option(help="A name for the lease owner.")] = "cli",
    tenant: TenantOpt = None,
) -> None:
    """Enrol date-triggered contacts and advance every due journey enrollment once."""
    with session(tenant) as (mk, tenant_id):
        enrolled = mk.journeys.enroll_dates(tenant_id)
        ran = mk.journeys.run_due(worker)
        out.print(f"{enrolled} enrolled by date, {ran} steps run")


marketing_app.command("pause")(cli_sends.pause_cmd)
marketing_app.command("resume")(cli_sends.resume_cmd)
marketing_app.command("cancel")(cli_sends.cancel_cmd)


@marketing_app.command("expand")
def expand_cmd(
    worker: Annotated[str, typer.Option(help="A name for the lease owner.")] = "cli",
    tenant: TenantOpt = None,
) -> None:
    """Expand started campaigns now (the worker does this every few seconds)."""
    with session(tenant) as (mk, _tenant_id):
        queued = mk.runs.expand_due(worker)
        settled = mk.runs.settle()
        out.print(f"{queued} messages queued, {settled} campaigns sent")


marketing_app.add_typer(cli_audience.contacts_app, name="contacts")
marketing_app.add_typer(cli_audience.segments_app, name="segments")
marketing_app.add_typer(cli_audience.lists_app, name="lists")
marketing_app.add_typer(cli_sends.campaigns_app, name="campaigns")
marketing_app.add_typer(cli_sends.caps_app, name="caps")
marketing_app.add_typer(cli_sends.conversions_app, name="conversions")
marketing_app.add_typer(cli_journeys.journeys_app, name="journeys")
