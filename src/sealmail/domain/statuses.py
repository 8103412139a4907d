"""The states a message and each of its recipients move through, as stored in ``status``.

One enum each, so a state is spelled once: the queue, the worker, bounces, suppressions,
the portal and the API compare against these, never against bare strings.  The values
are the stored strings and the API's, so stored rows and clients are unchanged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


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
    # Stored in ``messages.status`` (what intake, release and cancel set):
    QUEUED = "queued"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"  # every recipient was rejected
    CANCELLED = "cancelled"
    # Computed from the recipients when read (``aggregate``), never stored: the stored
    # value would go stale with every delivery, and recomputing is one grouped count.
    SENDING = "sending"  # some recipient is being tried or waits to be retried
    DELIVERED = "delivered"  # every recipient delivered
    PARTIALLY_DELIVERED = "partially_delivered"  # done; some delivered, some failed
    FAILED = "failed"  # done; none delivered (bounced, expired, rejected)


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


FAILED: frozenset[RecipientStatus] = frozenset(
    {RecipientStatus.BOUNCED, RecipientStatus.EXPIRED, RecipientStatus.REJECTED}
)


def aggregate(stored: str, counts: Mapping[str, int]) -> MessageStatus:
    """A message's status from its recipients' (``counts``: recipient status -> how many).

    A stored quarantine or a cancellation stands while nothing was delivered; otherwise
    the recipients decide: any still in flight → queued (none tried yet) or sending; all
    done → delivered (all of them), partially_delivered or failed.  Cancelled recipients
    are done and undelivered; a message whose recipients were all cancelled is cancelled.
    """
    known = {s.value for s in RecipientStatus}
    live = {RecipientStatus(s): n for s, n in counts.items() if n and s in known}
    delivered = live.get(RecipientStatus.DELIVERED, 0)
    if not live:
        return MessageStatus(stored) if stored in {s.value for s in MessageStatus} else MessageStatus.QUEUED
    if RecipientStatus.QUARANTINED in live:
        return MessageStatus.QUARANTINED
    if any(s in ACTIVE for s in live):
        # Queued while no recipient has been tried: the rest were refused at intake
        # (suppressed) or cancelled, never attempted.
        untried = {RecipientStatus.QUEUED, RecipientStatus.REJECTED, RecipientStatus.CANCELLED}
        fresh = all(s in untried for s in live) and stored == MessageStatus.QUEUED
        return MessageStatus.QUEUED if fresh else MessageStatus.SENDING
    failed = sum(n for s, n in live.items() if s in FAILED)
    if delivered and delivered < sum(live.values()):
        return MessageStatus.PARTIALLY_DELIVERED
    if delivered:
        return MessageStatus.DELIVERED
    if failed == 0:
        return MessageStatus.CANCELLED
    if set(live) == {RecipientStatus.REJECTED}:
        return MessageStatus.REJECTED
    return MessageStatus.FAILED


class SmsStatus(enum.StrEnum):
    """One text's state (issue 17), from queued to what the carrier's receipt said."""

    SCHEDULED = "scheduled"  # held for the end of the contact's quiet hours
    SENT = "sent"  # accepted by the provider
    DELIVERED = "delivered"  # the handset got it (a delivery receipt)
    FAILED = "failed"  # refused by the provider or undeliverable per the receipt
    EXPIRED = "expired"  # the carrier gave up (receipt)
    REFUSED = "refused"  # never sent: no consent for the purpose (STOP) or a bad number
