"""What SecureLine's deliveries to one (message, destination domain) share, and the ports it
reads facts through.  Kept apart from ``protect.py`` so the stage itself stays readable."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sealmail.delivery.policy import Transit
from sealmail.delivery.smtp_client import OutboundTransport
from sealmail.domain.secureline import DlpFacts, PlainConsent, Policy, RecipientFacts, TlsFacts
from sealmail.domain.tls_policy import TlsPolicy
from sealmail.messages.queue import Claimed, QueuedMessage
from sealmail.secureline.keydir import RecipientKeys


@dataclass(frozen=True, slots=True)
class Group:
    """What the deliveries to one (message, destination domain) share."""

    transport: OutboundTransport
    msg: QueuedMessage
    domain: str
    raw: bytes
    requested: TlsPolicy
    policy: Policy
    dlp: DlpFacts
    keys: dict[str, RecipientKeys]
    now: datetime
    known_state: str | None  # the destination's last known TLS capability ("meets", "fails")
    # Patients who asked this tenant for unencrypted mail and confirmed (lower-cased address).
    consents: dict[str, PlainConsent]
    transit: Transit = field(default_factory=Transit)

    def facts(self, c: Claimed, tls: TlsFacts) -> tuple[RecipientFacts, RecipientKeys]:
        k = self.keys.get(c.address.lower()) or RecipientKeys((), (), {}, {})
        return RecipientFacts(c.address, k.pgp, k.smime, tls, self.consents.get(c.address.lower())), k


class PlainRequests(Protocol):
    """The unencrypted-by-request register (``evidence/plain.py``) as SecureLine reads it."""

    def confirmed(self, tenant_id: str, addresses: Sequence[str]) -> dict[str, PlainConsent]: ...
