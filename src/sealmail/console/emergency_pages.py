"""Break-glass emergency access in the console: take it (with a reason), end it, and the
owner's switches on the Users page (who may break the glass; ending someone's grant).

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.errors import InvalidRequest
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.users.service import Users


def emergency_pages(app: FastAPI, users: Users, kit: Kit) -> None:
    @app.get("/emergency")
    def emergency_page(request: Request) -> Response:
        who = kit.signed_in(request, Permission.MANAGE_OWN_SIGNIN)
        if isinstance(who, Response):
            return who
        return kit.render(
            request, "emergency.html", title="Emergency access", who=who, grant=users.emergency_status(who),
            csrf=kit.csrf(request),
        )  # fmt: skip

    @app.post("/emergency")
    async def emergency_take(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_OWN_SIGNIN)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        try:
            minutes = int(str(form.get("minutes", "60"))[:4])
        except ValueError as exc:
            raise InvalidRequest("choose how long") from exc
        await run_in_threadpool(users.take_emergency, who, str(form.get("reason", ""))[:2000], minutes)
        return kit.redirect(request, "/emergency")

    @app.post("/emergency/end")
    async def emergency_end(request: Request) -> Response:
        return await kit.act(
            request, Permission.MANAGE_OWN_SIGNIN, lambda who, _: users.end_emergency(who), "/emergency"
        )

    @app.post("/users/{user_id}/break-glass")
    async def break_glass(request: Request, user_id: str) -> Response:
        def do(who: Session, form: Any) -> None:
            users.set_break_glass(who, user_id[:40], form.get("eligible") == "on")

        return await kit.act(request, Permission.MANAGE_SIGNIN_POLICY, do, "/users")

    @app.post("/users/{user_id}/emergency/end")
    async def end_for(request: Request, user_id: str) -> Response:
        return await kit.act(
            request,
            Permission.MANAGE_SIGNIN_POLICY,
            lambda who, _: users.end_emergency(who, user_id[:40]),
            "/users",
        )
