"""The sync client against the real API over HTTP: sending, reading, paging, errors."""

from __future__ import annotations

import base64

import pytest
from tests.conftest import TenantFixture, make_tenant
from tests.integration.client.server import ApiServer

from sealmail.app import Services
from sealmail.client import (
    Attachment,
    OutgoingMessage,
    RawMessage,
    SealmailApiError,
    SealmailClient,
    SealmailTransportError,
)


def message(**over: object) -> OutgoingMessage:
    values: dict[str, object] = {
        "from_": "Clinic <noreply@clinic.example>",
        "to": ["patient@example.net"],
        "subject": "Your appointment",
        "text": "See you Tuesday.",
        "stream": "phi",
    }
    values.update(over)
    return OutgoingMessage(**values)  # type: ignore[arg-type]


def test_sent_message_reads_back_with_recipients_content_and_events(client: SealmailClient) -> None:
    accepted = client.send_message(
        message(
            cc=["Nurse <nurse@example.org>"],
            attachments=[Attachment("note.txt", b"hello", "text/plain")],
            tags=["enc-42"],
            metadata={"ref": "A1"},
            protection="secure",
        )
    )
    assert accepted["id"].startswith("msg_")
    assert accepted["replayed"] is False
    assert [r["email"] for r in accepted["recipients"]] == ["patient@example.net", "nurse@example.org"]

    detail = client.get_message(accepted["id"])
    assert detail["tags"] == ["enc-42"] and detail["protection"] == "secure" and detail["status"] == "queued"
    assert {r["status"] for r in detail["recipients"]} == {"queued"}

    content = client.get_content(accepted["id"])
    assert content["subject"] == "Your appointment"
    assert content["text"] is not None and "Tuesday" in content["text"]
    assert [a["filename"] for a in content["attachments"]] == ["note.txt"]

    events = list(client.list_events(message_id=accepted["id"], types=["message.accepted"]))
    assert [e["type"] for e in events] == ["message.accepted"] * 2


def test_raw_message_is_accepted_for_its_envelope(client: SealmailClient) -> None:
    raw = (
        b"From: noreply@clinic.example\r\nTo: patient@example.net\r\n"
        b"Subject: Raw\r\nMessage-ID: <raw-1@clinic.example>\r\n\r\nBody\r\n"
    )
    accepted = client.send_raw(
        RawMessage(mail_from="noreply@clinic.example", rcpt_to=["patient@example.net"], message=raw)
    )
    assert client.get_content(accepted["id"])["subject"] == "Raw"


def test_list_messages_follows_cursors_across_pages(client: SealmailClient) -> None:
    sent = [client.send_message(message(subject=f"n{i}"))["id"] for i in range(5)]
    listed = [m["id"] for m in client.list_messages(page_size=2)]
    assert listed == sorted(sent, reverse=True)
    assert [m["id"] for m in client.list_messages(stream="broadcast")] == []


def test_event_feed_resumes_after_the_last_seen_event(client: SealmailClient) -> None:
    for i in range(3):
        client.send_message(message(subject=f"e{i}"))
    events = list(client.list_events(page_size=2))
    assert len(events) == 3
    rest = list(client.list_events(after=events[0]["id"]))
    assert [e["id"] for e in rest] == [e["id"] for e in events[1:]]


def test_cancel_stops_queued_recipients_and_a_second_cancel_is_a_conflict(client: SealmailClient) -> None:
    accepted = client.send_message(message())
    assert client.cancel(accepted["id"])["cancelled"] == [accepted["recipients"][0]["id"]]
    with pytest.raises(SealmailApiError) as info:
        client.cancel(accepted["id"])
    assert info.value.status == 409
    assert info.value.slug == "conflict"


def test_captured_is_empty_until_the_sink_receives_mail(client: SealmailClient) -> None:
    assert list(client.captured()) == []


def test_same_idempotency_key_replays_and_a_different_body_is_a_conflict(client: SealmailClient) -> None:
    first = client.send_message(message(), idempotency_key="order-7")
    again = client.send_message(message(), idempotency_key="order-7")
    assert again["id"] == first["id"]
    assert again["replayed"] is True
    with pytest.raises(SealmailApiError) as info:
        client.send_message(message(subject="something else"), idempotency_key="order-7")
    assert info.value.status == 409
    assert info.value.slug == "idempotency-conflict"


def test_invalid_fields_raise_422_naming_each_field(client: SealmailClient) -> None:
    with pytest.raises(SealmailApiError) as info:
        client.send_message(message(tags=[str(i) for i in range(11)], tls_policy="bogus"))
    err = info.value
    assert err.status == 422
    assert err.slug == "validation-failed"
    assert set(err.fields) >= {"tags", "tls_policy"}
    assert err.detail


def test_another_tenants_message_is_not_found(
    client: SealmailClient, api: ApiServer, services: Services
) -> None:
    other: TenantFixture = make_tenant(services, "Other", "other.example")
    with SealmailClient(api.url, other.api_key) as theirs:
        mine = client.send_message(message())
        for call in (theirs.get_message, theirs.get_content, theirs.cancel, theirs.release):
            with pytest.raises(SealmailApiError) as info:
                call(mine["id"])
            assert info.value.status == 404, call
            assert info.value.type == "https://sealmail.dev/problems/not-found"


def test_bad_key_is_401_and_a_key_without_the_scope_is_403(
    client: SealmailClient, api: ApiServer, tenant: TenantFixture
) -> None:
    with SealmailClient(api.url, "sm_not-a-real-key") as stranger, pytest.raises(SealmailApiError) as info:
        stranger.get_tenant()
    assert info.value.status == 401
    reader = client.create_api_key("reader", ["read"])
    with SealmailClient(api.url, reader["key"]) as limited, pytest.raises(SealmailApiError) as info:
        limited.send_message(message())
    assert (info.value.status, info.value.slug) == (403, "permission-denied")


def test_ids_cannot_escape_their_path_segment(client: SealmailClient) -> None:
    with pytest.raises(SealmailApiError) as info:
        client.get_message("../tenant")
    assert info.value.status == 404


def test_unreachable_server_is_a_transport_error_without_the_key() -> None:
    with SealmailClient("http://127.0.0.1:9", "sm_secret-value", timeout=2) as sm:
        with pytest.raises(SealmailTransportError) as info:
            sm.get_tenant()
    assert "sm_secret" not in str(info.value)
    assert "sm_secret" not in repr(sm)


def test_attachment_bytes_travel_base64_encoded() -> None:
    assert Attachment("a.bin", b"\x00\xff").to_json()["content"] == base64.b64encode(b"\x00\xff").decode()
