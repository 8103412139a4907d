"""``sealmail suppressions …``: list, add, remove and export the suppression list.

A Typer sub-app (``suppressions_app``) registered by the main CLI; it goes through the
same ``Suppressions`` service as the API, so every change is audited with actor ``cli``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from sealmail.cli_support import SessionOpener, console, write_lines
from sealmail.suppressions.service import ALL_STREAMS, Filters, Suppressions

suppressions_app = typer.Typer(no_args_is_help=True, help="Addresses not to send to (per stream or all).")
out = console()

TenantOpt = Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")]
StreamOpt = Annotated[str, typer.Option(help='transactional, phi, broadcast or "*" (every stream).')]


session: SessionOpener[Suppressions] = SessionOpener("suppressions")


@suppressions_app.command("list")
def list_cmd(
    stream: Annotated[str | None, typer.Option(help="Only entries of exactly this stream.")] = None,
    reason: Annotated[str | None, typer.Option(help="hard_bounce, soft_bounce, complaint, …")] = None,
    address: Annotated[str | None, typer.Option(help="Only this address.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    tenant: TenantOpt = None,
) -> None:
    """The newest entries, one a line."""
    with session(tenant) as (store, tenant_id):
        page = store.list(tenant_id, limit=limit, filters=Filters(stream, reason, address))
        for e in page.items:
            until = f"  until {e.expires_at.isoformat()}" if e.expires_at else ""
            state = "" if e.active else "  (expired)"
            out.print(f"{e.address}  {e.stream:<13}  {e.reason:<11}  {e.source}{until}{state}")
        if page.next_cursor:
            out.print("… more; use `sealmail suppressions export` for the whole list")


@suppressions_app.command("add")
def add_cmd(
    address: Annotated[str, typer.Argument(help="The bare address.")],
    stream: StreamOpt = ALL_STREAMS,
    reason: Annotated[str, typer.Option(help="manual or unsubscribe.")] = "manual",
    expires_at: Annotated[
        datetime | None, typer.Option(help="When it stops suppressing (ISO 8601 with offset).")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Suppress an address on a stream (default: every stream)."""
    with session(tenant) as (store, tenant_id):
        row, written = store.add(
            tenant_id,
            address=address,
            stream=stream,
            reason=reason,
            expires_at=expires_at,
            actor="cli",
            source="cli",
        )
        out.print(f"{'suppressed' if written else 'already suppressed'}: {row.id} ({row.stream})")


@suppressions_app.command("remove")
def remove_cmd(address: str, stream: StreamOpt = ALL_STREAMS, tenant: TenantOpt = None) -> None:
    """Remove the entry for exactly this stream ("*" is its own entry)."""
    with session(tenant) as (store, tenant_id):
        store.remove(tenant_id, stream=stream, address=address, actor="cli")
        out.print("removed")


@suppressions_app.command("export")
def export_cmd(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; default stdout.")
    ] = None,
    stream: Annotated[str | None, typer.Option(help="Only entries of exactly this stream.")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    tenant: TenantOpt = None,
) -> None:
    """Every entry as CSV (RFC 4180)."""
    with session(tenant) as (store, tenant_id):
        lines = store.export_csv(tenant_id, Filters(stream, reason))
        if write_lines(lines, output):
            out.print(f"written to {output}")
