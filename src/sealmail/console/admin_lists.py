"""The tenant's lists in the console: suppressions (search, add, remove), recipient keys
(what SecureLine knows per address, delete), and webhook endpoints (health, recent
deliveries with their attempts, replay).  Every change goes through the feature's own
service, which audits it with the console user as actor.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.errors import ValidationFailed
from sealmail.secureline.keydir import KeyDirectory
from sealmail.suppressions.service import ALL_STREAMS, Filters, Suppressions
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.webhooks.endpoints import WebhookEndpoints
from sealmail.webhooks.states import EndpointStatus

P = Permission.MANAGE_SETTINGS


@dataclass(frozen=True, slots=True)
class ListPages:
    suppressions: Suppressions
    keydir: KeyDirectory
    webhooks: WebhookEndpoints

    def section(self) -> ConsoleSection:
        nav = [("/suppressions", "Suppressions", P), ("/recipient-keys", "Recipient keys", P),
               ("/webhooks", "Webhooks", P)]  # fmt: skip
        return ConsoleSection(nav=nav, mount=self.mount)

    def mount(self, app: FastAPI, kit: Kit) -> None:
        self._suppressions(app, kit)
        self._keys(app, kit)
        self._webhooks(app, kit)

    def _suppressions(self, app: FastAPI, kit: Kit) -> None:
        @app.get("/suppressions")
        def listing(request: Request, address: str = "", error: str = "") -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            found = self.suppressions.list(
                who.tenant_id, limit=100, filters=Filters(address=address[:320] or None)
            )
            return kit.render(
                request, "admin_suppressions.html", title="Suppressions", who=who, rows=found.items,
                address=address, error=error[:300], csrf=kit.csrf(request),
            )  # fmt: skip

        @app.post("/suppressions")
        async def add(request: Request) -> Response:
            acted = await kit.acting(request, P)
            if isinstance(acted, Response):
                return acted
            who, form = acted
            try:
                await run_in_threadpool(
                    lambda: self.suppressions.add(
                        who.tenant_id, address=str(form.get("address", ""))[:320],
                        stream=str(form.get("stream", ALL_STREAMS))[:20], actor=who.actor, source="console",
                    )
                )  # fmt: skip
            except ValidationFailed as exc:
                return kit.redirect(request, "/suppressions?error=" + _q(exc.detail))
            return kit.redirect(request, "/suppressions")

        @app.post("/suppressions/remove")
        async def remove(request: Request) -> Response:
            def do(who: Session, form: Any) -> None:
                address, stream = str(form.get("address", ""))[:320], str(form.get("stream", ""))[:20]
                self.suppressions.remove(who.tenant_id, stream=stream, address=address, actor=who.actor)

            return await kit.act(request, P, do, "/suppressions")

    def _keys(self, app: FastAPI, kit: Kit) -> None:
        @app.get("/recipient-keys")
        def keys(request: Request, address: str = "") -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            rows = self.keydir.list(who.tenant_id, address=address[:320] or None)[:500]
            return kit.render(
                request, "admin_keys.html", title="Recipient keys", who=who, rows=rows, address=address,
                csrf=kit.csrf(request),
            )  # fmt: skip

        @app.post("/recipient-keys/{key_id}/delete")
        async def delete(request: Request, key_id: str) -> Response:
            def do(who: Session, _: Any) -> None:
                self.keydir.delete(who.tenant_id, key_id[:40], who.actor)

            return await kit.act(request, P, do, "/recipient-keys")

    def _webhooks(self, app: FastAPI, kit: Kit) -> None:
        @app.get("/webhooks")
        def endpoints(request: Request) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            rows = self.webhooks.list_endpoints(who.tenant_id)
            return kit.render(
                request, "admin_webhooks.html", title="Webhooks", who=who, rows=rows, csrf=kit.csrf(request),
                EndpointStatus=EndpointStatus,
            )  # fmt: skip

        @app.get("/webhooks/{endpoint_id}")
        def deliveries(request: Request, endpoint_id: str) -> Response:
            who = kit.signed_in(request, P)
            if isinstance(who, Response):
                return who
            endpoint = self.webhooks.get(who.tenant_id, endpoint_id[:40])
            rows = self.webhooks.deliveries(who.tenant_id, endpoint.id, limit=50)
            return kit.render(
                request, "admin_webhook.html", title="Webhook deliveries", who=who, endpoint=endpoint,
                rows=rows, csrf=kit.csrf(request),
            )  # fmt: skip

        @app.post("/webhooks/deliveries/{delivery_id}/replay")
        async def replay(request: Request, delivery_id: str) -> Response:
            acted = await kit.acting(request, P)
            if isinstance(acted, Response):
                return acted
            who, _ = acted
            done = await run_in_threadpool(
                self.webhooks.replay_delivery, who.tenant_id, delivery_id[:40], who.actor
            )
            return kit.redirect(request, f"/webhooks/{done.endpoint_id}")


def _q(text: str) -> str:
    return quote(text[:300], safe="")
