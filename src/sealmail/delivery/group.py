"""What SecureLine's deliveries to one (message, destination domain) share, and the ports it
reads facts through.  Kept apart from ``protect.py`` so the stage itself stays readable."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sealmail.delivery.policy import Transit
from sealmail.delivery.smtp_client import OutboundTransport
from sealmail.domain.addresses import parse_address
from sealmail.domain.secureline import (
    CommsPreference,
    Decision,
    DlpFacts,
    PlainConsent,
    Policy,
    RecipientFacts,
    TlsFacts,
    TlsState,
)
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
    known_state: TlsState | None  # the destination's last known TLS capability
    # Patients who asked this tenant for unencrypted mail and confirmed (lower-cased address).
    consents: dict[str, PlainConsent]
    transit: Transit = field(default_factory=Transit)
    # Patients' standing confidential-communication preferences (164.522(b)), by address.
    preferences: dict[str, CommsPreference] = field(default_factory=dict)

    def facts(self, c: Claimed, tls: TlsFacts) -> tuple[RecipientFacts, RecipientKeys]:
        """The recipient's facts; for a patient who redirected their mail, the keys and the
        plain-mail consent of the alternative address, where the message will go."""
        preference = self.preferences.get(c.address.lower())
        target = c.address.lower()
        if preference is not None and preference.redirect_to:
            target, tls = preference.redirect_to, TlsFacts()
        k = self.keys.get(target) or RecipientKeys((), (), {}, {})
        return RecipientFacts(c.address, k.pgp, k.smime, tls, self.consents.get(target), preference), k


class PlainRequests(Protocol):
    """The unencrypted-by-request register (``evidence/plain.py``) as SecureLine reads it."""

    def confirmed(self, tenant_id: str, addresses: Sequence[str]) -> dict[str, PlainConsent]: ...

    def cached_none_of(self, tenant_id: str, addresses: Iterable[str]) -> bool: ...


class CommsPreferences(Protocol):
    """The confidential-communication register (``evidence/preferences.py``) as SecureLine reads it."""

    def standing(self, tenant_id: str, addresses: Sequence[str]) -> dict[str, CommsPreference]: ...

    def cached_none_of(self, tenant_id: str, addresses: Iterable[str]) -> bool: ...


def target_of(c: Claimed, decision: Decision) -> tuple[str, str]:
    """Where this recipient's copy goes, and its domain: the alternative address a patient
    asked for (164.522(b)), or the recipient's own."""
    if decision.deliver_to:
        # The register keeps the address as the patient gave it; the envelope wants A-labels.
        other = parse_address(decision.deliver_to, "alternative")
        return other.smtp_addr_spec, other.ascii_domain
    return c.address, c.domain
