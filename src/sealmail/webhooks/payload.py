"""Webhook bodies: the Standard Webhooks envelope around a Sealmail event.

The spec's recommended shape is ``{"type", "timestamp", "data"}`` ("Payload structure"),
with a dot-delimited ``type``.  Two levels of detail:

* ``thin`` (the default, and what the spec calls a "thin payload"): identifiers, type,
  status, sequence and stable reason tokens, never an address or free text.  A receiver
  that needs more fetches it through the API, where access is authenticated and audited.
* ``full``: adds the recipient address, tags, metadata and the SMTP/transport details.
  Subject, body and headers are never part of an event, and keys that could carry them
  are stripped anyway, in case a future event grows one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from sealmail.store.events import EventType

PayloadMode = Literal["thin", "full"]
TEST_EVENT_TYPE = EventType.WEBHOOK_TEST

# Fields of ``events.data`` that are tokens or numbers, safe in a thin payload: the
# PHI-free facts a receiver needs to act without asking for the full payload —
# why a recipient was rejected or suppressed, whether an open or click was a machine's,
# how an unsubscribe arrived, whether a bounce was asynchronous.  (``status`` and
# ``stream`` are the event's own and are never overwritten from the data.)
_THIN_DATA = (
    # A journey's webhook step: ids, a step number and the step's label (never contact data).
    "journey_id",
    "enrollment_id",
    "contact_id",
    "step",
    "label",
    "conversion",
    "attempt",
    "reason",
    "next_attempt_at",
    "classification",
    "suppression",
    "async",
    "feedback_type",
    "machine_open",
    "bot_suspected",
    "user_agent_class",
    "source",
)
_THIN_BOUNCE = ("type", "classification", "origin")
# Content never leaves in a webhook, whatever the payload mode.
_CONTENT_KEYS = frozenset({"subject", "body", "html", "text", "headers", "content", "raw", "attachments"})


def _strip_content(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_content(v) for k, v in value.items() if str(k).lower() not in _CONTENT_KEYS}
    if isinstance(value, list):
        return [_strip_content(v) for v in value]
    return value


def _status(event_type: str) -> str:
    return event_type.rsplit(".", 1)[-1]


def event_data(
    event: Mapping[str, Any],
    message: Mapping[str, Any] | None,
    mode: PayloadMode,
) -> dict[str, Any]:
    """The ``data`` object for one event row (and its message's routing facts)."""
    raw: Mapping[str, Any] = event.get("data") or {}
    data: dict[str, Any] = {
        "event_id": event["id"],
        "message_id": event["message_id"],
        "recipient_id": event["recipient_id"],
        "stream": message["stream"] if message else None,
        "status": _status(str(event["type"])),
        "sequence": event["seq"],
    }
    if mode == "thin":
        for key in _THIN_DATA:
            if key in raw:
                data[key] = raw[key]
        bounce = raw.get("bounce")
        if isinstance(bounce, Mapping):
            data["bounce"] = {k: bounce[k] for k in _THIN_BOUNCE if k in bounce}
        return data
    data["recipient"] = event["recipient"]
    if message is not None:
        data["tags"] = list(message.get("tags") or [])
        data["metadata"] = dict(message.get("metadata") or {})
    for key, value in _strip_content(raw).items():
        data.setdefault(key, value)
    return data


def envelope(event_type: str, timestamp: datetime, data: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed and sent."""
    body = {"type": event_type, "timestamp": timestamp.isoformat(), "data": dict(data)}
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def render(event: Mapping[str, Any], message: Mapping[str, Any] | None, mode: PayloadMode) -> bytes:
    return envelope(str(event["type"]), event["created_at"], event_data(event, message, mode))


def render_test(endpoint_id: str, delivery_id: str, at: datetime) -> bytes:
    """The body of a test-send: no event, no message, nothing about anyone."""
    return envelope(TEST_EVENT_TYPE, at, {"endpoint_id": endpoint_id, "delivery_id": delivery_id})
