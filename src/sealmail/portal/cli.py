"""``sealmail portal …``: recall, end access now, list, and the expiry sweep."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from argon2 import PasswordHasher

from sealmail.app import Services
from sealmail.portal.lifecycle import PortalLifecycle

portal_app = typer.Typer(help="Secure-portal messages: recall, expire, list.", no_args_is_help=True)

Tenant = Annotated[str | None, typer.Option(help="Tenant id (needed when several exist).")]


def _lifecycle() -> tuple[PortalLifecycle, Services]:
    # Imported late: sealmail.cli will import this module to register ``portal_app``.
    from sealmail.cli import _services

    svc = _services()
    s = svc.settings
    hasher = PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib)
    return PortalLifecycle(svc.engine, hasher), svc


def _tenant(svc: Services, tenant: str | None) -> str:
    from sealmail.cli import _tenant as pick  # late, as above

    return pick(svc, tenant)


def _print(value: object) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@portal_app.command("recall")
def recall(message_id: str, tenant: Tenant = None) -> None:
    """Revoke portal access to a message for all its recipients (read or not)."""
    lifecycle, svc = _lifecycle()
    try:
        _print(lifecycle.recall(_tenant(svc, tenant), message_id, "cli"))
    finally:
        svc.close()


@portal_app.command("expire-now")
def expire_now(message_id: str, tenant: Tenant = None) -> None:
    """End portal access now; the content is shredded once no recipient needs it."""
    lifecycle, svc = _lifecycle()
    try:
        _print(lifecycle.expire_now(_tenant(svc, tenant), message_id, "cli"))
    finally:
        svc.close()


@portal_app.command("list")
def list_holds(message_id: str, tenant: Tenant = None) -> None:
    """Show a message's portal settings and each portal recipient's state."""
    lifecycle, svc = _lifecycle()
    try:
        _print(lifecycle.describe(_tenant(svc, tenant), message_id))
    finally:
        svc.close()


@portal_app.command("sweep")
def sweep() -> None:
    """Emit pending portal events, expire what is due and shred finished messages."""
    lifecycle, svc = _lifecycle()
    try:
        result = lifecycle.sweep()
        _print({"notified": result.notified, "expired": result.expired, "shredded": result.shredded})
    finally:
        svc.close()
