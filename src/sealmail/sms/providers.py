"""The one interface every SMS provider sits behind, and the facts that cross it.

A provider sends (``send`` → ``ProviderReply``) and reports back through the
``ProviderEvents`` it is given: delivery receipts and inbound texts (STOP, HELP, START).
How they arrive differs — SMPP ``deliver_sm`` on the bound session, an HTTP provider's
signed callbacks — and stops at the adapter: the service sees only these values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class ReceiptState(enum.StrEnum):
    SENT = "sent"  # still on its way (accepted, enroute, queued at the carrier)
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class OutboundText:
    sms_id: str
    source: str  # E.164 sender number
    destination: str  # E.164
    text: str


@dataclass(frozen=True, slots=True)
class ProviderReply:
    accepted: bool
    provider_message_id: str
    status: str  # the provider's own word (queued, 0x00000000, 400 …)
    detail: str = ""
    segments: int = 1  # SMS segments the text went as (what the carrier bills)


@dataclass(frozen=True, slots=True)
class ReceiptIn:
    provider: str
    provider_message_id: str
    state: ReceiptState
    raw_state: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class InboundText:
    provider: str
    source: str  # the contact
    destination: str  # our number
    body: str


class ProviderEvents(Protocol):
    async def receipt(self, receipt: ReceiptIn) -> None: ...
    async def inbound(self, text: InboundText) -> None: ...


class SmsProvider(Protocol):
    name: str

    async def send(self, text: OutboundText) -> ProviderReply: ...
    async def close(self) -> None: ...
