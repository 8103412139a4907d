"""Response bodies of the portal management routes."""

from __future__ import annotations

from pydantic import Field

from sealmail.web.models import Out


class PortalNoticeOut(Out):
    channel: str = Field(description="What carried the notice: `email`.")
    required_tls: str | None = Field(description="The message's required TLS level.")
    tls_version: str | None = Field(description="TLS version of the delivered notice; null = plaintext.")
    verified_by: str | None = Field(description="`pkix`, `dane`, `mta-sts` or `none`.")
    meets_required: bool = Field(
        description="False: the notice went out below the required level, so emailed sign-in codes "
        "must meet the level (or another factor is needed)."
    )


class PortalHoldOut(Out):
    id: str
    recipient_id: str
    email: str
    state: str
    created_at: str | None
    expires_at: str | None
    notified_at: str | None
    viewed_at: str | None
    recalled_at: str | None
    requires_passphrase: bool
    content_destroyed: bool
    notice: PortalNoticeOut | None = Field(
        None, description="How the notice carrying the link travelled; null until one was delivered."
    )


class PortalStatusOut(Out):
    message_id: str
    requires_passphrase: bool
    expires_at: str | None
    recalled_at: str | None
    shredded_at: str | None
    recipients: list[PortalHoldOut]


class PortalRecallOut(PortalStatusOut):
    recalled: int = Field(description="How many portal recipients lost access now.")
    shredded: bool = Field(description="Whether the content was destroyed at once.")
    cancelled: int = Field(
        0, description="How many recipients not yet sent to (queued or waiting to retry) were cancelled."
    )
