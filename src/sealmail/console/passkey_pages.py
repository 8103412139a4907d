"""A signed-in person's own passkeys: list, add (the WebAuthn registration ceremony), remove.

The ceremony runs in the browser from ``static/passkey.js``, the one script the console
serves; these pages alone carry ``script-src 'self'``.  The sign-in step that uses a
passkey lives with the other sign-in steps in ``console/web.py``.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, Response

from sealmail.console.kit import Kit
from sealmail.users.model import Session
from sealmail.users.roles import Permission
from sealmail.users.service import Users


def passkey_pages(app: FastAPI, users: Users, kit: Kit) -> None:
    def page(request: Request, who: Session, **ctx: Any) -> HTMLResponse:
        options = users.registration_options(who) if users.rp is not None else None
        return kit.render(
            request, "passkeys.html", title="Passkeys", who=who, passkeys=users.list_passkeys(who),
            options=options, csrf=kit.csrf(request), scripted=options is not None, **ctx,
        )  # fmt: skip

    @app.get("/passkeys")
    def passkey_list(request: Request) -> Response:
        who = kit.signed_in(request, Permission.MANAGE_OWN_SIGNIN)
        return who if isinstance(who, Response) else page(request, who)

    @app.post("/passkeys")
    async def passkey_add(request: Request) -> Response:
        acted = await kit.acting(request, Permission.MANAGE_OWN_SIGNIN)
        if isinstance(acted, Response):
            return acted
        who, form = acted
        name, credential = str(form.get("name", ""))[:100], str(form.get("credential", ""))
        await run_in_threadpool(users.add_passkey, who, name, credential)
        return await run_in_threadpool(lambda: page(request, who, added=True))

    @app.post("/passkeys/{passkey_id}/remove")
    async def passkey_remove(request: Request, passkey_id: str) -> Response:
        def do(who: Session, _: Any) -> None:
            users.remove_passkey(who, passkey_id[:40])

        return await kit.act(request, Permission.MANAGE_OWN_SIGNIN, do, "/passkeys")
