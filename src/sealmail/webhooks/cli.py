"""``sealmail webhooks …``: list, add, rotate and replay endpoints from the shell.

A Typer sub-app (``webhooks_app``) that the main CLI registers; it goes through the same
``WebhookEndpoints`` service as the API, so every change is audited with actor ``cli``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape

from sealmail.cli_support import SessionOpener, console
from sealmail.webhooks.endpoints import EndpointSpec, WebhookEndpoints

webhooks_app = typer.Typer(no_args_is_help=True, help="Webhook endpoints (Standard Webhooks).")
out = console()

TenantOpt = Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")]


session: SessionOpener[WebhookEndpoints] = SessionOpener("webhooks")


@webhooks_app.command("list")
def list_cmd(tenant: TenantOpt = None) -> None:
    """Endpoints of the tenant, with status and failure streak."""
    with session(tenant) as (endpoints, tenant_id):
        for ep in endpoints.list_endpoints(tenant_id):
            streams = ",".join(ep.streams) or "all streams"
            types = ",".join(ep.event_types) or "all events"
            out.print(
                # Escaped: rich would read "[transactional; …]" as markup and drop it.
                escape(f"{ep.id}  {ep.status:<8}  {ep.payload:<4}  {ep.url}  [{streams}; {types}]")
                + (f"  failures={ep.consecutive_failures}" if ep.consecutive_failures else "")
            )


@webhooks_app.command("add")
def add_cmd(
    url: Annotated[str, typer.Argument(help="Receiver URL (https).")],
    event_type: Annotated[list[str] | None, typer.Option("--event-type", help="Repeat; default all.")] = None,
    stream: Annotated[list[str] | None, typer.Option("--stream", help="Repeat; default all.")] = None,
    full: Annotated[bool, typer.Option(help="Full payloads (addresses, tags, transport).")] = False,
    description: Annotated[str, typer.Option(help="A note for humans.")] = "",
    tenant: TenantOpt = None,
) -> None:
    """Create an endpoint; prints its signing secret once."""
    with session(tenant) as (endpoints, tenant_id):
        spec = EndpointSpec(url, event_type or [], stream or [], "full" if full else "thin", description)
        ep, secret = endpoints.create(tenant_id, spec, actor="cli")
        out.print(f"endpoint {ep.id} ({ep.payload} payloads)")
        out.print(f"signing secret (shown once): [bold]{secret}[/bold]")


@webhooks_app.command("rotate")
def rotate_cmd(
    endpoint_id: str,
    overlap_hours: Annotated[float, typer.Option(help="Hours the old secret keeps signing.")] = 24.0,
    tenant: TenantOpt = None,
) -> None:
    """New signing secret; both are sent during the overlap."""
    with session(tenant) as (endpoints, tenant_id):
        ep, secret = endpoints.rotate_secret(tenant_id, endpoint_id, "cli", timedelta(hours=overlap_hours))
        out.print(f"new signing secret (shown once): [bold]{secret}[/bold]")
        expires = ep.previous_secret_expires_at
        out.print(f"the previous secret also signs until {expires.isoformat() if expires else None}")


@webhooks_app.command("replay")
def replay_cmd(
    target: Annotated[str, typer.Argument(help="An endpoint id (with --since) or a delivery id.")],
    since: Annotated[
        datetime | None, typer.Option(help="Resend every event at or after this time (ISO 8601).")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Resend one delivery, or everything an endpoint got since a time."""
    with session(tenant) as (endpoints, tenant_id):
        if since is None:
            delivery = endpoints.replay_delivery(tenant_id, target, actor="cli")
            out.print(f"delivery {delivery.id} queued again (webhook-id {delivery.webhook_id})")
            return
        when = since if since.tzinfo else since.replace(tzinfo=UTC)
        queued = endpoints.replay_since(tenant_id, target, when, actor="cli")
        out.print(f"{queued} deliveries queued for {target}")
