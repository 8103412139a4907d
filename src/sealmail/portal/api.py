"""Sender-side portal controls: recall, per-message expiry and passphrase, hold listing.

Tenant-scoped like every API route: a message of another tenant is a 404, never a 403.
``need`` is the API's scope dependency factory (``need("send")`` → ``Depends``).

No ``from __future__ import annotations``: FastAPI reads the route signatures at runtime.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from sealmail.portal.lifecycle import UNSET, PortalLifecycle
from sealmail.portal.schemas import PortalRecallOut, PortalStatusOut
from sealmail.tenancy.service import Principal
from sealmail.web.models import Instant


class PortalSettingsIn(BaseModel):
    """A partial update: omitted fields stay as they are; ``null`` clears a field."""

    model_config = ConfigDict(extra="forbid")

    expires_at: Instant | None = Field(
        None, description="When portal access ends (with a timezone offset); null restores the default."
    )
    passphrase: str | None = Field(
        None,
        min_length=8,
        max_length=1024,
        description="Require this passphrase instead of an emailed code; null removes it. "
        "Give it to the recipient by another channel (e.g. phone).",
    )


def router(lifecycle: PortalLifecycle, need: Any) -> APIRouter:
    r = APIRouter(prefix="/v1", tags=["portal"])
    Sender = Annotated[Principal, need("send")]
    Reader = Annotated[Principal, need("read")]

    @r.post(
        "/messages/{message_id}/recall",
        response_model=PortalRecallOut,
        summary="Recall a message (cancel what was not sent, revoke every portal recipient's access)",
    )
    async def recall(message_id: str, who: Sender) -> PortalRecallOut:
        """Cancel the recipients not yet sent to and revoke portal access for all of the
        message's portal recipients, read or not; audited with the caller."""
        done = await run_in_threadpool(lifecycle.recall, who.tenant_id, message_id, who.credential_id)
        return PortalRecallOut.of(
            done.status, recalled=done.recalled, shredded=done.shredded, cancelled=done.cancelled
        )

    @r.patch(
        "/messages/{message_id}/portal",
        response_model=PortalStatusOut,
        summary="Set a portal message's expiry and passphrase",
    )
    async def configure(message_id: str, body: PortalSettingsIn, who: Sender) -> PortalStatusOut:
        given = body.model_fields_set
        status = await run_in_threadpool(
            lambda: lifecycle.configure(
                who.tenant_id,
                message_id,
                who.credential_id,
                expires_at=body.expires_at if "expires_at" in given else UNSET,
                passphrase=body.passphrase if "passphrase" in given else UNSET,
            )
        )
        return PortalStatusOut.of(status)

    @r.get(
        "/portal/messages", response_model=PortalStatusOut, summary="A message's portal settings and holds"
    )
    def list_portal(who: Reader, message_id: Annotated[str, Query(min_length=1)]) -> PortalStatusOut:
        """The message's portal settings and each portal recipient's state."""
        return PortalStatusOut.of(lifecycle.describe(who.tenant_id, message_id))

    return r
