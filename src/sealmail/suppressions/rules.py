"""The pure suppression rules: reasons, streams, and what a delivery outcome does to the list.

No I/O here: the rules are read by intake (``match``), by the queue (``outcome_rule``) and
by the administration service; the reasoning behind them is in ``suppressions.service``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from sealmail.domain.statuses import RecipientStatus
from sealmail.domain.tls_policy import Stream


@dataclass(frozen=True, slots=True)
class DeliveryFact:
    """One recorded delivery outcome, as the suppression rules see it.

    The queue hands these over instead of its own outcome type, so this feature sits below
    the messages feature (which consults it at intake) and no import runs back up.
    """

    tenant_id: str
    message_id: str
    address: str
    status: str
    classification: str | None
    attempt_reason: str
    attempts: int
    replied: bool


class SuppressionReason(enum.StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    MANUAL = "manual"


ALL_STREAMS = "*"  # a suppression for every stream of the tenant
STREAMS: frozenset[str] = frozenset({ALL_STREAMS, *(str(s) for s in Stream)})
# What an administrator may add by hand; bounces and complaints are facts the system records.
API_REASONS: frozenset[SuppressionReason] = frozenset(
    {SuppressionReason.MANUAL, SuppressionReason.UNSUBSCRIBE}
)
SOFT_BOUNCE_TTL = timedelta(days=30)
# "Soft-fail exhaustion" means repeated failures: a message whose own short expires_at
# ran out after one deferral says little about the address.
SOFT_BOUNCE_MIN_ATTEMPTS = 3
COMPLAINT_STREAM = str(Stream.BROADCAST)
# Addresses per statement: well inside SQLite's bound-parameter limit.
CHUNK = 400

# Bounce classes (domain/retry.py ``BounceClass``) that say the address itself cannot
# receive mail, and the reasons of attempts that ended without any server reply
# (delivery/dns.py: the domain does not exist or has a null MX, RFC 7505).
_HARD_CLASSES = frozenset({"invalid_recipient", "bad_domain", "inactive_mailbox"})
_HARD_LOCAL_REASONS = frozenset({"bad_domain", "null_mx"})
# Causes on the sender's or the content's side: never the recipient's fault.
_SENDER_SIDE_CLASSES = frozenset(
    {
        "spam_block",
        "spam_content",
        "policy",
        "authentication_failed",
        "tls_required",
        "rate_limited",
        "too_many_recipients",
    }
)


def normalize(address: str) -> str:
    """The form addresses are stored and compared in (see the module docstring)."""
    return address.strip().lower()


def match(entries: dict[str, SuppressionReason] | None, stream: str) -> SuppressionReason | None:
    """The reason ``stream`` is suppressed given one address's entries, if it is."""
    if not entries:
        return None
    return entries.get(ALL_STREAMS) or entries.get(stream)


def outcome_rule(
    status: str, classification: str | None, attempt_reason: str, attempts: int, *, replied: bool
) -> tuple[SuppressionReason, timedelta | None] | None:
    """What a terminal delivery outcome does to the list (pure; see the module docstring).

    ``replied``: the attempt ended with a server reply.  Then only the reply's
    classification counts (the attempt reason ``invalid_recipient`` also covers 5.1.7 and
    5.1.8, which are about the sender); without one, the local reason does.
    """
    if status == RecipientStatus.BOUNCED:
        if classification in _HARD_CLASSES or (not replied and attempt_reason in _HARD_LOCAL_REASONS):
            return SuppressionReason.HARD_BOUNCE, None
        return None
    if status == RecipientStatus.EXPIRED:
        if classification in _SENDER_SIDE_CLASSES or attempt_reason in _SENDER_SIDE_CLASSES:
            return None
        if attempts < SOFT_BOUNCE_MIN_ATTEMPTS:
            return None
        return SuppressionReason.SOFT_BOUNCE, SOFT_BOUNCE_TTL
    return None
