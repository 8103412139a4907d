"""The texts page of the console (``ConsoleSection``): the SMS delivery trail.

One row per text (``sms_texts``): template, purpose, status and reason, provider and its
id, times, and the portal message it is about.  Numbers are shown as ``redact`` shows them
in the audit log (country code and last two digits) and bodies never appear: the body
carries a portal link, a capability, so it stays sealed.  Support and administrators read
it with the delivery trail permission (``trail.view``), like the messages page.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from fastapi import FastAPI, Request
from starlette.responses import Response

from sealmail.console.kit import Kit
from sealmail.console.web import ConsoleSection
from sealmail.sms.contacts import redact
from sealmail.sms.service import Texting
from sealmail.users.roles import Permission

LIMIT = 200


def section(texting: Texting) -> ConsoleSection:
    def mount(app: FastAPI, kit: Kit) -> None:
        @app.get("/texts")
        def texts(request: Request, message: str = "") -> Response:
            who = kit.signed_in(request, Permission.VIEW_TRAIL)
            if isinstance(who, Response):
                return who
            rows = texting.texts(who.tenant_id, message[:40] or None, LIMIT)
            shown = [{**r, "number": redact(r["number"])} for r in reversed(rows)]
            return kit.render(
                request,
                "sms_texts.html",
                title="Texts",
                who=who,
                rows=shown,
                message=message[:40],
                limit=LIMIT,
            )

    return ConsoleSection(nav=[("/texts", "Texts", Permission.VIEW_TRAIL)], mount=mount, templates=None)
