"""The HTTP provider's callbacks: ``/sms/twilio/status`` and ``/sms/twilio/inbound``.

Public routes (the provider calls them), so each request must carry a valid
``X-Twilio-Signature`` over the URL we published — built from the configured public
URL, never from the request's Host header — before its parameters mean anything.
Bodies are small forms; anything larger is refused unread.

No ``from __future__ import annotations``: FastAPI reads route signatures at runtime.
"""

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse, Response

from sealmail.domain.numerals import within
from sealmail.sms import twilio
from sealmail.sms.service import Texting
from sealmail.web import problems

MAX_CALLBACK_BYTES = 16 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def create_callbacks(texting: Texting, provider: twilio.TwilioProvider, public_url: str) -> FastAPI:
    """The callback app; the role mounts it at ``/sms``."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    # A body the form parser refuses is a problem (RFC 9457), as on every other route.
    problems.install(app)
    token = provider.options.auth_token
    base = public_url.rstrip("/") + "/sms"

    async def verified(request: Request, path: str) -> dict[str, str] | None:
        declared = request.headers.get("content-length", "")
        if not within(declared, MAX_CALLBACK_BYTES):
            return None
        form = await request.form(max_files=0, max_fields=100)
        params = {k: v for k, v in form.items() if isinstance(v, str)}
        if not twilio.verify(token, base + path, params, request.headers.get("x-twilio-signature", "")):
            return None
        return params

    @app.post("/twilio/status")
    async def status(request: Request) -> Response:
        params = await verified(request, "/twilio/status")
        if params is None:
            return PlainTextResponse("forbidden", status_code=403)
        receipt = provider.receipt(params)
        if receipt is not None:
            await texting.receipt(receipt)
        return Response(status_code=204)

    @app.post("/twilio/inbound")
    async def inbound(request: Request) -> Response:
        params = await verified(request, "/twilio/inbound")
        if params is None:
            return PlainTextResponse("forbidden", status_code=403)
        text = provider.inbound(params)
        if text is not None:
            await texting.inbound(text)
        # Replies (HELP, STOP confirmations) go through the API like every text, so they are audited.
        return Response(EMPTY_TWIML, media_type="application/xml")

    return app
