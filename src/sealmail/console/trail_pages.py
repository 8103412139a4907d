"""A message's delivery trail, and recalling it or changing its portal expiry.

The trail names, per recipient, what SecureLine chose and why, the key it encrypted to and
where that key came from, and per attempt the TLS version, cipher, the server certificate's
SHA-256, what vouched for it (PKIX, MTA-STS, DANE), the remote reply and the portal opens:
the facts the worker recorded when the attempt ended (``Reports.trail``), the same ones a
signed proof of delivery is built from.

Recall and expiry go through the portal's service, the same one the API's
``POST /v1/messages/{id}/recall`` and ``PATCH /v1/messages/{id}/portal`` use, with the
console user as the actor of the audit entry.  A sender acts on their own messages
(``messages.compose``); administrators on any of the tenant's (``messages.recall_any``).
An expiry is typed in a named time zone, the tenant's own (its working hours') unless the
person names another, and shown back in it: nobody converts to UTC in their head.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.outbox import Outbox
from sealmail.console.reports import Reports, Trail
from sealmail.console.web import ConsoleSection
from sealmail.domain import zones
from sealmail.errors import ValidationFailed
from sealmail.portal.lifecycle import PortalLifecycle, PortalStatus
from sealmail.users.model import Session
from sealmail.users.roles import Permission

_GONE = "No such message among yours."


class MessageView:
    """What the trail page and a sender's outcome page show of one message."""

    def __init__(
        self,
        reports: Reports,
        outbox: Outbox,
        lifecycle: PortalLifecycle,
        zone_of: Callable[[str], str] = lambda _tenant: "UTC",
    ) -> None:
        self.reports = reports
        self.outbox = outbox
        self.lifecycle = lifecycle
        self.zone_of = zone_of  # the tenant's time zone (IANA name), for expiry in and out

    def may_act(self, who: Session, message_id: str) -> bool:
        """Recall and expiry: an administrator's on any message, a sender's on their own."""
        if who.may(Permission.RECALL_ANY):
            return True
        return who.may(Permission.COMPOSE) and self.outbox.owns(who, message_id)

    def page(self, who: Session, message_id: str) -> "MessagePage":
        """What the page shows (404 for a message not in the tenant)."""
        trail = self.reports.trail(who.tenant_id, message_id)
        if trail is None:
            raise HTTPException(404, _GONE)
        portal = self.lifecycle.describe(who.tenant_id, message_id)
        return MessagePage(trail, portal, self.may_act(who, message_id))

    def render(
        self, kit: Kit, request: Request, who: Session, message_id: str, template: str, title: str, back: str
    ) -> Response:
        """The trail page and a sender's outcome page: one message shown in ``template``."""
        shown = self.page(who, message_id)
        zone = self.zone_of(who.tenant_id)
        expires = shown.portal.expires_at
        return kit.render(
            request,
            template,
            title=title,
            who=who,
            back=back,
            csrf=kit.csrf(request),
            m=shown.m,
            portal=shown.portal,
            may_act=shown.may_act,
            zone=zone,
            expires_local=_local(expires, zone) if expires else None,
        )


@dataclass(frozen=True, slots=True)
class MessagePage:
    """One message's trail, its portal state, and whether the viewer may recall it."""

    m: Trail
    portal: PortalStatus
    may_act: bool


def _zone(name: str) -> ZoneInfo:
    try:
        return zones.zone(name.strip() or "UTC")
    except ValueError as exc:
        raise ValidationFailed([{"field": "zone", "message": str(exc)}]) from None


def _local(at: datetime, zone: str) -> str:
    """``at`` as the tenant reads it, with the zone named (UTC alongside when it differs)."""
    shown = f"{at.astimezone(_zone(zone)).strftime('%Y-%m-%d %H:%M')} {zone}"
    return shown if zone == "UTC" else f"{shown} ({at.astimezone(UTC).strftime('%Y-%m-%d %H:%M UTC')})"


def _expiry(raw: str, zone: str, now: datetime) -> datetime:
    """A ``datetime-local`` value read in ``zone``, which must lie ahead; stored in UTC."""
    tz = _zone(zone)
    try:
        when = datetime.fromisoformat(raw.strip()[:32])
    except ValueError:
        raise ValidationFailed([{"field": "expires", "message": "give a date and time"}]) from None
    when = when.replace(tzinfo=tz).astimezone(UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise ValidationFailed([{"field": "expires", "message": "must be in the future"}])
    return when


def trail_section(view: MessageView) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        _pages(app, kit, view)

    return ConsoleSection(nav=[], mount=mount)


def _pages(app: FastAPI, kit: Kit, view: MessageView) -> None:
    def back(who: Session, form: Any, message_id: str) -> str:
        if form.get("back") == "sent" or not who.may(Permission.VIEW_TRAIL):
            return f"/sent/{message_id}"
        return f"/messages/{message_id}"

    async def acting(request: Request, message_id: str) -> tuple[Session, Any] | Response:
        acted = await kit.acting(request, Permission.COMPOSE)
        if isinstance(acted, Response):
            return acted
        if not await run_in_threadpool(view.may_act, acted[0], message_id):
            raise HTTPException(404, _GONE)
        return acted

    @app.get("/messages/{message_id}")
    def trail(request: Request, message_id: str) -> Response:
        who = kit.signed_in(request, Permission.VIEW_TRAIL)
        if isinstance(who, Response):
            return who
        return view.render(kit, request, who, message_id[:40], "trail.html", "Delivery trail", "messages")

    @app.post("/messages/{message_id}/recall")
    async def recall(request: Request, message_id: str) -> Response:
        message_id = message_id[:40]
        acted = await acting(request, message_id)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        # Audited by the portal service with this user (portal:recalled, message:cancelled).
        await run_in_threadpool(view.lifecycle.recall, who.tenant_id, message_id, who.actor)
        return kit.redirect(request, back(who, form, message_id))

    @app.post("/messages/{message_id}/expiry")
    async def expiry(request: Request, message_id: str) -> Response:
        message_id = message_id[:40]
        acted = await acting(request, message_id)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        zone = str(form.get("zone", "")) or view.zone_of(who.tenant_id)
        when = _expiry(str(form.get("expires", "")), zone, datetime.now(UTC))
        await run_in_threadpool(
            lambda: view.lifecycle.configure(who.tenant_id, message_id, who.actor, expires_at=when)
        )
        return kit.redirect(request, back(who, form, message_id))
