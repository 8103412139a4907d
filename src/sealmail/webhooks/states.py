"""The states an endpoint and a delivery are stored in (``webhook_endpoints.status``,
``webhook_deliveries.status``).

One enum each, so a state is spelled once: the service, the outbox and the console compare
against these, never against bare strings.  The values are the stored strings and the API's,
so stored rows and clients are unchanged.
"""

from __future__ import annotations

import enum


class EndpointStatus(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # by the tenant, or by the failure streak (``disabled_reason`` says which)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # due at ``next_attempt_at`` (or leased by a dispatcher)
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # the retry schedule ran out, or the receiver answered 410
    DROPPED = "dropped"  # can never be sent (its event is gone): not tried again
