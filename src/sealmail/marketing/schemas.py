"""Request bodies of ``/v1/marketing/…`` (pydantic): bounded, unknown fields refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PurposeName = Literal["treatment", "operations", "marketing", "fundraising"]
ChannelName = Literal["email", "sms"]
AttrValue = str | int | float | bool | None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttributeIn(Strict):
    name: str = Field(max_length=40, description="a-z, 0-9 and _, a letter first.")
    type: Literal["text", "number", "date", "boolean", "choice"]
    phi_class: Literal["none", "demographic", "clinical", "sensitive"] = Field(
        description="sensitive values are encrypted at rest and shown only to admin keys."
    )
    choices: list[str] | None = Field(None, max_length=100)


class ContactIn(Strict):
    email: str = Field(max_length=320)
    phone: str | None = Field(None, max_length=32, description="E.164, e.g. +14155550123.")
    tz: str | None = Field(None, max_length=64, description="IANA zone; default UTC.")
    status: Literal["active", "unsubscribed", "bounced", "archived"] | None = None
    attributes: dict[str, AttrValue] = Field(default_factory=dict, max_length=100)


class ContactBatchIn(Strict):
    contacts: list[ContactIn] = Field(min_length=1, max_length=10_000)


class ListIn(Strict):
    name: str = Field(min_length=1, max_length=100)


class MembersIn(Strict):
    contact_ids: list[str] = Field(min_length=1, max_length=10_000)


class ConsentIn(Strict):
    purpose: PurposeName
    channel: ChannelName = "email"
    action: Literal["grant", "revoke"]
    source: Literal["form", "api", "import", "staff", "mailto", "stop", "preferences"] = "api"
    evidence: str | None = Field(None, max_length=500, description="A reference: form id, ticket, call log.")


class AuthorizationIn(Strict):
    """45 CFR 164.508(c): the core elements, the statements, and remuneration if any."""

    purpose: Literal["marketing", "fundraising"] = "marketing"
    information: str = Field(max_length=1000, description="What PHI may be used or disclosed.")
    disclosed_by: str = Field(max_length=300, description="Who may use or disclose it.")
    disclosed_to: str = Field(max_length=300, description="To whom it may be disclosed.")
    purpose_statement: str = Field(max_length=1000)
    expires_at: datetime
    signed_by: str = Field(max_length=200)
    signed_at: datetime
    statements: list[Literal["right_to_revoke", "conditioning", "redisclosure"]] = Field(max_length=3)
    remuneration: bool = False
    remuneration_statement: str | None = Field(None, max_length=1000)
    document_sha256: str = Field(min_length=64, max_length=64)
    source: Literal["form", "staff", "api"] = "form"

    def as_body(self) -> dict[str, Any]:
        return self.model_dump()


class SegmentIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    rule: dict[str, Any] = Field(
        description="A rule tree: all/any/not over attr, contact, consent, list, engaged."
    )


class RulePreviewIn(Strict):
    rule: dict[str, Any]
    sample: int = Field(20, ge=0, le=100)


class CapIn(Strict):
    max_sends: int = Field(ge=1, le=1000)
    window_hours: int = Field(ge=1, le=24 * 90)


class VariantIn(Strict):
    name: str = Field(min_length=1, max_length=40)
    template: str = Field(min_length=1, max_length=100)
    version: int | None = Field(None, ge=1, description="Default: the newest, pinned at creation.")
    weight: int = Field(1, ge=1, le=100)


class CampaignIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    purpose: PurposeName
    remunerated: bool = Field(False, description="A third party pays: needs an authorization stating it.")
    segment: str = Field(
        min_length=1, max_length=100, description="Segment id or name (newest version, pinned)."
    )
    from_: str = Field(alias="from", max_length=400)
    variants: list[VariantIn] = Field(min_length=1, max_length=5)
    send_at: datetime | None = None
    quiet_start: int = Field(21, ge=0, le=23, description="Local hour quiet hours begin (contact's zone).")
    quiet_end: int = Field(8, ge=0, le=23, description="Local hour they end; equal to start: none.")

    def as_body(self) -> dict[str, Any]:
        body = self.model_dump(by_alias=True)
        body["variants"] = [v.model_dump() for v in self.variants]
        return body


class JourneyIn(Strict):
    name: str = Field(min_length=1, max_length=100)
    definition: dict[str, Any] = Field(description="A trigger and up to 20 steps (see the journeys docs).")


class JourneyEventIn(Strict):
    event: str = Field(min_length=1, max_length=60)
    email: str = Field(max_length=320)
    key: str | None = Field(
        None, max_length=40, description="Makes the event distinct (e.g. an appointment id)."
    )
