"""Thin/full payloads, endpoint validation and time-ordered id arithmetic (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sealmail.errors import ValidationFailed
from sealmail.ids import new_id
from sealmail.webhooks.endpoints import check_endpoint
from sealmail.webhooks.outbox import id_floor, id_time
from sealmail.webhooks.payload import event_data, render

EVENT = {
    "id": "evt_01",
    "type": "message.bounced",
    "message_id": "msg_01",
    "recipient_id": "rcp_01",
    "recipient": "patient@example.net",
    "seq": 3,
    "created_at": datetime(2026, 6, 1, tzinfo=UTC),
    "data": {
        "attempt": 2,
        "reason": "mailbox_unknown",
        "detail": "550 5.1.1 <patient@example.net> unknown",
        "smtp": {"code": 550, "enhanced": "5.1.1"},
        "bounce": {"type": "hard", "classification": "invalid_recipient", "note": "patient@example.net"},
        "subject": "must never leave",
    },
}
MESSAGE = {"stream": "phi", "tags": ["reminder"], "metadata": {"ehr": "opaque"}}


def test_thin_payload_has_ids_status_and_tokens_but_no_address_or_free_text() -> None:
    data = event_data(EVENT, MESSAGE, "thin")
    assert data == {
        "event_id": "evt_01",
        "message_id": "msg_01",
        "recipient_id": "rcp_01",
        "stream": "phi",
        "status": "bounced",
        "sequence": 3,
        "attempt": 2,
        "reason": "mailbox_unknown",
        "bounce": {"type": "hard", "classification": "invalid_recipient"},
    }


def test_full_payload_adds_recipient_tags_and_transport_but_strips_content_keys() -> None:
    body = json.loads(render(EVENT, MESSAGE, "full"))
    assert body["type"] == "message.bounced" and body["timestamp"].startswith("2026-06-01")
    data = body["data"]
    assert data["recipient"] == "patient@example.net"
    assert data["tags"] == ["reminder"] and data["metadata"] == {"ehr": "opaque"}
    assert data["smtp"] == {"code": 550, "enhanced": "5.1.1"}
    assert "subject" not in data


@pytest.mark.parametrize("streams", [[], ["phi"], ["transactional", "phi"]])
def test_http_is_refused_when_the_phi_stream_can_be_sent(streams: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        check_endpoint("http://hooks.example.org/", streams, [], allow_insecure_http=False)
    check_endpoint("http://hooks.example.org/", streams, [], allow_insecure_http=True)
    check_endpoint("https://hooks.example.org/", streams, [], allow_insecure_http=False)


def test_http_is_allowed_for_non_phi_streams() -> None:
    check_endpoint("http://hooks.example.org/", ["broadcast"], [], allow_insecure_http=False)


@pytest.mark.parametrize(
    ("url", "streams", "types"),
    [
        ("ftp://x.example/", [], []),
        ("https://user:pw@x.example/", [], []),
        ("https:///nohost", [], []),
        ("https://x.example/", ["marketing"], []),
        ("https://x.example/", [], ["Message Delivered"]),
    ],
)
def test_bad_endpoint_settings_are_refused(url: str, streams: list[str], types: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        check_endpoint(url, streams, types, allow_insecure_http=True)


def test_id_floor_sorts_below_every_id_made_at_or_after_that_time() -> None:
    before = datetime.now(UTC) - timedelta(milliseconds=5)
    made = new_id("evt")
    assert id_floor("evt", before) < made
    assert id_floor("evt", datetime.now(UTC) + timedelta(seconds=1)) > made
    assert abs(id_time(made) - datetime.now(UTC)) < timedelta(seconds=5)


def test_thin_payload_keeps_engagement_flags_but_not_the_events_own_status() -> None:
    event = {
        **EVENT,
        "type": "message.opened",
        "data": {"machine_open": True, "user_agent_class": "proxy", "status": "5.1.1", "stream": "x"},
    }
    data = event_data(event, MESSAGE, "thin")
    assert data["machine_open"] is True and data["user_agent_class"] == "proxy"
    # The event's own status and the message's stream are never replaced from event data.
    assert data["status"] == "opened" and data["stream"] == "phi"
