"""``sealmail portal …``: recall, end access now, list, and the expiry sweep."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sealmail.cli_support import SessionOpener
from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.web.models import as_json

portal_app = typer.Typer(help="Secure-portal messages: recall, expire, list.", no_args_is_help=True)

Tenant = Annotated[str | None, typer.Option(help="Tenant name or id (needed when several exist).")]

# Bound by the root CLI; ``sweep`` is installation-wide and opens with tenant "*".
session: SessionOpener[PortalLifecycle] = SessionOpener("portal")
ALL_TENANTS = "*"


def _print(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@portal_app.command("recall")
def recall(message_id: str, tenant: Tenant = None) -> None:
    """Recall a message: cancel recipients not yet sent to, revoke portal access (read or not)."""
    with session(tenant) as (lifecycle, tenant_id):
        done = lifecycle.recall(tenant_id, message_id, "cli")
        _print(
            {
                **as_json(done.status),
                "recalled": done.recalled,
                "shredded": done.shredded,
                "cancelled": done.cancelled,
            }
        )


@portal_app.command("expire-now")
def expire_now(message_id: str, tenant: Tenant = None) -> None:
    """End portal access now; the content is shredded once no recipient needs it."""
    with session(tenant) as (lifecycle, tenant_id):
        _print(as_json(lifecycle.expire_now(tenant_id, message_id, "cli")))


@portal_app.command("list")
def list_holds(message_id: str, tenant: Tenant = None) -> None:
    """Show a message's portal settings and each portal recipient's state."""
    with session(tenant) as (lifecycle, tenant_id):
        _print(as_json(lifecycle.describe(tenant_id, message_id)))


@portal_app.command("sweep")
def sweep() -> None:
    """Emit pending portal events, expire what is due and shred finished messages."""
    with session(ALL_TENANTS) as (lifecycle, _):
        result = lifecycle.sweep()
        _print({"notified": result.notified, "expired": result.expired, "shredded": result.shredded})
