"""The states a message and each of its recipients move through, as stored in ``status``.

One enum each, so a state is spelled once: the queue, the worker, bounces, suppressions,
the portal and the API compare against these, never against bare strings.  The values
are the stored strings and the API's, so stored rows and clients are unchanged.
"""

from __future__ import annotations

import enum


class RecipientStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for its first attempt (or released from quarantine)
    DEFERRED = "deferred"  # a temporary failure: tried again at ``next_attempt_at``
    DELIVERING = "delivering"  # leased by a worker until ``lease_until``
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # a permanent failure, at the attempt or later (RFC 3464 DSN)
    EXPIRED = "expired"  # still deferred when the message's lifetime ran out
    CANCELLED = "cancelled"
    REJECTED = "rejected"  # never attempted: suppressed at intake or at delivery
    QUARANTINED = "quarantined"  # held by DLP until an administrator releases it


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"  # every recipient was rejected
    CANCELLED = "cancelled"


# A worker may still pick these up (or hold a lease on them).
ACTIVE: frozenset[RecipientStatus] = frozenset(
    {RecipientStatus.QUEUED, RecipientStatus.DEFERRED, RecipientStatus.DELIVERING}
)
# Nothing more happens to these (an asynchronous bounce may still turn DELIVERED into BOUNCED).
TERMINAL: frozenset[RecipientStatus] = frozenset(
    {
        RecipientStatus.DELIVERED,
        RecipientStatus.BOUNCED,
        RecipientStatus.EXPIRED,
        RecipientStatus.CANCELLED,
        RecipientStatus.REJECTED,
    }
)
# Waiting for an attempt: what cancelling stops and what has a next attempt time.
WAITING: frozenset[RecipientStatus] = frozenset({RecipientStatus.QUEUED, RecipientStatus.DEFERRED})


class SmsStatus(enum.StrEnum):
    """One text's state (issue 17), from queued to what the carrier's receipt said."""

    SCHEDULED = "scheduled"  # held for the end of the contact's quiet hours
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # the handset got it (a delivery receipt)
    FAILED = "failed"  # refused by the provider or undeliverable per the receipt
    EXPIRED = "expired"  # the carrier gave up (receipt)
    REFUSED = "refused"  # never sent: no consent for the purpose (STOP) or a bad number
