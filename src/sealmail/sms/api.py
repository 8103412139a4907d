"""Secure texting over HTTP (``/v1/sms``): sending numbers, contacts with consent, the trail.

Numbers and contacts decide who gets texts, so changing them needs ``admin``; the
delivery trail of texts needs ``read``.  Numbers travel in the path in E.164 (``+`` may
be sent as ``%2B``).
"""

# No ``from __future__ import annotations``: FastAPI reads the ``Annotated`` aliases of
# the route functions at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from sealmail.sms.schemas import ContactIn, ContactOut, SenderIn, SenderOut, TextListOut
from sealmail.sms.service import Texting
from sealmail.tenancy.service import Principal


def router(texting: Texting, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1/sms", tags=["sms"])
    Admin = Annotated[Principal, need("admin")]
    Reader = Annotated[Principal, need("read")]

    @r.post("/senders", status_code=201, response_model=SenderOut, summary="Add a sending number")
    def add_sender(body: SenderIn, who: Admin) -> dict[str, Any]:
        """Texts go out from it; inbound STOP/HELP/START to it are matched to this tenant."""
        return texting.add_sender(who.tenant_id, body.number, who.credential_id)

    @r.put("/contacts/{number}", response_model=ContactOut, summary="Create or replace an SMS contact")
    def put_contact(number: str, body: ContactIn, who: Admin) -> dict[str, Any]:
        """The recipient's number, time zone, notice choice and consent per purpose.
        A STOP texted by the contact later overrides the consent given here."""
        return texting.put_contact(
            who.tenant_id,
            number,
            time_zone=body.time_zone,
            address=body.address,
            notice=body.notice,
            consents=body.consents.model_dump(),
            actor=who.credential_id,
        )

    @r.get("/contacts/{number}", response_model=ContactOut, summary="Get an SMS contact")
    def get_contact(number: str, who: Reader) -> dict[str, Any]:
        return texting.contact(who.tenant_id, number)

    @r.get("/texts", response_model=TextListOut, summary="The texts sent (no bodies)")
    async def list_texts(
        who: Reader,
        message_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        return {"data": await run_in_threadpool(texting.texts, who.tenant_id, message_id, limit)}

    return r
