"""Request and response bodies of ``/v1/sms``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(max_length=32, description="The tenant's sending number, E.164 (e.g. +14155550100).")


class SenderOut(BaseModel):
    number: str


class Consents(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notice: bool = Field(True, description="Texts announcing a secure message.")
    code: bool = Field(True, description="Sign-in codes for the portal.")
    reminder: bool = Field(True, description="Reminders of unread secure messages.")


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time_zone: str = Field(
        "UTC", max_length=64, description="IANA zone; quiet hours (21:00-08:00) are local."
    )
    address: str | None = Field(
        None, max_length=320, description="The email address whose portal messages this number hears about."
    )
    notice: Literal["email", "sms", "both"] = Field(
        "email",
        description="How portal notices reach this recipient by default: email, SMS only, or both "
        "(a message's own `notice` choice overrides it).",
    )
    consents: Consents = Field(
        default_factory=lambda: Consents(notice=True, code=True, reminder=True),
        description="Consent obtained, per purpose (TCPA).",
    )


class ContactOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    number: str
    address: str | None
    time_zone: str
    notice: str
    consents: dict[str, bool]
    updated_at: str


class TextOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    number: str
    template: str = Field(description="notice | code | reminder | help | stopped | started (never free text)")
    purpose: str | None
    message_id: str | None
    status: str = Field(description="queued | scheduled | sending | sent | delivered | failed | expired")
    status_reason: str | None
    provider: str
    provider_message_id: str | None
    created_at: str
    due_at: str
    updated_at: str


class TextListOut(BaseModel):
    data: list[TextOut]
