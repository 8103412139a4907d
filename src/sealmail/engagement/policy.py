"""Which messages get what: a tenant's tracking opt-in and the broadcast stream's headers.

Tenant setting ``tracking`` (``PATCH /v1/tenant/settings``)::

    {"opens": bool, "clicks": bool, "streams": ["transactional", "broadcast", "phi"]}

Everything is off until a tenant turns it on.  When ``streams`` is left out, tracking
covers the transactional and broadcast streams only: the phi stream is tracked only when
a tenant lists it by name, because a patient's open of a clinical message, tied to an IP
address and a time, is itself PHI (research/delivery.md §e.10, research/marketing.md).

Independent of tracking, every broadcast message carries RFC 8058 one-click unsubscribe
headers: Gmail and Yahoo require them of bulk senders, and CAN-SPAM requires an opt-out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealmail.domain.tls_policy import Stream

DEFAULT_STREAMS: frozenset[str] = frozenset({str(Stream.TRANSACTIONAL), str(Stream.BROADCAST)})
UNSUBSCRIBE_STREAMS: frozenset[str] = frozenset({str(Stream.BROADCAST)})


@dataclass(frozen=True, slots=True)
class Plan:
    """What one message gets."""

    opens: bool = False
    clicks: bool = False
    unsubscribe: bool = False

    @property
    def any(self) -> bool:
        return self.opens or self.clicks or self.unsubscribe

    @property
    def tracks(self) -> bool:
        return self.opens or self.clicks


def plan(tenant_settings: Mapping[str, Any], stream: str) -> Plan:
    raw = tenant_settings.get("tracking")
    tracking: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    listed = tracking.get("streams")
    streams = frozenset(str(s) for s in listed) if isinstance(listed, list) else DEFAULT_STREAMS
    on = stream in streams
    return Plan(
        opens=on and tracking.get("opens") is True,
        clicks=on and tracking.get("clicks") is True,
        unsubscribe=stream in UNSUBSCRIBE_STREAMS,
    )
