"""``sealmail tlsrpt …``: send the daily TLS reports (RFC 8460) and read the ones received.

``send`` is the daily job (run it from cron or a timer shortly after 00:00 UTC); it is
idempotent per (tenant, policy domain, day, endpoint), so a rerun sends only what failed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from sealmail.cli_support import SessionOpener, console
from sealmail.tlsrpt.report import InvalidReport, parse_received
from sealmail.tlsrpt.sender import TlsReportSender
from sealmail.tlsrpt.service import TlsReports

tlsrpt_app = typer.Typer(no_args_is_help=True, help="SMTP TLS reports (RFC 8460): send ours, read theirs.")
out = console(soft_wrap=True)

TenantOpt = Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")]

session: SessionOpener[TlsReports] = SessionOpener("tlsrpt")
sender_session: SessionOpener[TlsReportSender] = SessionOpener("tlsrpt")


@tlsrpt_app.command("send")
def send_cmd(
    day: Annotated[str | None, typer.Option(help="UTC day YYYY-MM-DD (default: yesterday).")] = None,
) -> None:
    """Send every report of the day not yet delivered; one line per endpoint tried."""
    which = date.fromisoformat(day) if day else (datetime.now(UTC) - timedelta(days=1)).date()
    with sender_session("*") as (sender, _):
        results = asyncio.run(sender.run(which))
    for r in results:
        out.print(f"{'sent' if r.ok else 'FAILED'}  {r.policy_domain}  {r.rua}  {r.detail}")
    if any(not r.ok for r in results):
        raise typer.Exit(1)


@tlsrpt_app.command("list")
def list_cmd(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100, tenant: TenantOpt = None) -> None:
    """Reports received about the tenant's domains, newest first."""
    with session(tenant) as (store, tenant_id):
        for row in store.received(tenant_id, limit=limit):
            out.print(
                f"{row.id}  {row.start_at.isoformat()[:10]}  {row.policy_domain}  {row.organization}"
                f"  ok={row.successes} failed={row.failures}"
            )


@tlsrpt_app.command("show")
def show_cmd(report_id: str, tenant: TenantOpt = None) -> None:
    """One received report, as JSON."""
    with session(tenant) as (store, tenant_id):
        out.print_json(json.dumps(store.received_one(tenant_id, report_id).report))


@tlsrpt_app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .json or .json.gz report.")],
    tenant: TenantOpt = None,
) -> None:
    """Store a report received by mail (the application/tlsrpt+gzip attachment)."""
    try:
        report = parse_received(path.read_bytes())
    except InvalidReport as exc:
        out.print(f"[red]error:[/red] not an RFC 8460 report: {exc}")
        raise typer.Exit(2) from exc
    with session(tenant) as (store, tenant_id):
        row = store.receive(tenant_id, report, actor="cli")
        out.print(f"stored {row.id} ({row.organization}, {row.policy_domain})")
