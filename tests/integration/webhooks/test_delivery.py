"""Delivery end to end: events → fan-out → signed POSTs to a real loopback receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from tests.conftest import TenantFixture
from tests.integration.webhooks.conftest import PATIENT, SUBJECT, dispatch, send_message
from tests.integration.webhooks.receiver import Receiver

from sealmail.app import Services
from sealmail.domain.tls_policy import Stream
from sealmail.ids import new_id
from sealmail.store.tables import events, messages
from sealmail.webhooks import outbox
from sealmail.webhooks.endpoints import EndpointSpec, WebhookEndpoints
from sealmail.webhooks.policy import MAX_ATTEMPTS
from sealmail.webhooks.tables import webhook_deliveries, webhook_endpoints


def _add(endpoints: WebhookEndpoints, t: TenantFixture, url: str, **kw: object) -> tuple[str, str]:
    ep, secret = endpoints.create(t.id, EndpointSpec(url, **kw), actor="test")  # type: ignore[arg-type]
    return ep.id, secret


def _delivery(services: Services, endpoint_id: str) -> sa.Row[tuple[object, ...]]:
    with services.engine.connect() as conn:
        return conn.execute(
            sa.select(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
        ).one()


def test_event_is_signed_verifiably_and_thin_payload_carries_no_phi(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    _, secret = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    message_id = send_message(services, tenant.principal, tenant.domain)

    assert dispatch(services) == 1

    [request] = receiver.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert body["type"] == "message.accepted"
    assert body["data"]["message_id"] == message_id
    assert body["data"]["status"] == "accepted"
    assert body["data"]["stream"] == "transactional"
    assert request.headers["webhook-id"] == body["data"]["event_id"]
    raw = request.body.decode()
    for phi in (PATIENT, SUBJECT, "appointment-reminder", "opaque-9f2c", "See you Tuesday"):
        assert phi not in raw


def test_full_payload_adds_address_tags_and_metadata_but_never_the_subject(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    _, secret = _add(endpoints, tenant, receiver.url, streams=["transactional"], payload="full")
    send_message(services, tenant.principal, tenant.domain)

    dispatch(services)

    data = Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)["data"]
    assert data["recipient"] == PATIENT
    assert data["tags"] == ["appointment-reminder"]
    assert data["metadata"] == {"ehr_ref": "opaque-9f2c"}
    assert SUBJECT not in receiver.requests[0].body.decode()


def test_receiver_that_fails_then_recovers_gets_the_event_with_the_same_webhook_id(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    endpoint_id, secret = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.fail(2, status=503)
    now = datetime.now(UTC)

    dispatch(services, now)
    assert dispatch(services, now + timedelta(seconds=1)) == 0  # not due before the 5 s step
    dispatch(services, now + timedelta(minutes=1))
    dispatch(services, now + timedelta(hours=1))

    assert len(receiver.requests) == 3
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
    row = _delivery(services, endpoint_id)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 204)
    log = endpoints.deliveries(tenant.id, endpoint_id)[0].log
    assert [a.outcome for a in log] == ["retry", "retry", "delivered"]
    assert [a.status_code for a in log] == [503, 503, 204]


def test_retry_after_is_honoured(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    endpoint_id, _ = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.fail(1, status=429, headers={"Retry-After": "3600"})
    now = datetime.now(UTC)

    dispatch(services, now)

    assert _delivery(services, endpoint_id).next_attempt_at >= now + timedelta(seconds=3600)
    assert dispatch(services, now + timedelta(minutes=30)) == 0
    assert dispatch(services, now + timedelta(seconds=3601)) == 1
    assert _delivery(services, endpoint_id).status == "delivered"


@pytest.mark.parametrize("hostile", ["99999999999999999999", "\u00b2", "9" * 5000])
def test_a_retry_after_the_scheduler_cannot_represent_is_capped_not_a_crash(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver, hostile: str
) -> None:
    # A receiver's Retry-After is read from the outside world: a number past timedelta's range,
    # a Unicode digit int() refuses, or past int()'s 4300-digit guard crashed the attempt
    # before it was recorded, so it was re-sent every lease, never counted, never given up.
    endpoint_id, _ = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.fail(1, status=503, headers={"Retry-After": hostile})
    now = datetime.now(UTC)

    dispatch(services, now)

    row = _delivery(services, endpoint_id)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 503)
    assert now < row.next_attempt_at <= now + timedelta(hours=24, seconds=1)


def test_redirect_is_a_failure_and_is_not_followed(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    endpoint_id, _ = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.fail(1, status=302, headers={"Location": "http://169.254.169.254/latest"})

    dispatch(services)

    row = _delivery(services, endpoint_id)
    assert (row.status, row.last_status_code) == ("pending", 302)
    assert "redirects are not followed" in row.last_error
    assert len(receiver.requests) == 1


def test_410_disables_the_endpoint_and_emails_the_tenant_admin(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    services.tenancy.update_settings(tenant.id, {"admin_email": "it-admin@clinic.example"}, actor="test")
    endpoint_id, _ = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.fail(1, status=410)

    dispatch(services)

    ep = endpoints.get(tenant.id, endpoint_id)
    assert ep.status == "disabled"
    assert "410" in (ep.disabled_reason or "")
    with services.engine.connect() as conn:
        notices = conn.execute(
            sa.select(messages.c.id, messages.c.tenant_id).where(messages.c.metadata.isnot(None))
        ).all()
        notice_events = conn.execute(
            sa.select(events.c.recipient).where(events.c.recipient == "it-admin@clinic.example")
        ).all()
    assert len(notices) == 2 and notice_events  # the patient message and the PHI-free notice
    send_message(services, tenant.principal, tenant.domain)
    assert dispatch(services, datetime.now(UTC) + timedelta(hours=1)) == 0
    assert len(receiver.requests) == 1


def test_sustained_failure_exhausts_the_schedule_and_auto_disables(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    endpoint_id, _ = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    receiver.always(500)
    now = datetime.now(UTC)

    for step in range(MAX_ATTEMPTS + 2):
        dispatch(services, now + timedelta(hours=26 * step))

    assert len(receiver.requests) == MAX_ATTEMPTS
    row = _delivery(services, endpoint_id)
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    ep = endpoints.get(tenant.id, endpoint_id)
    assert ep.status == "disabled"
    assert "consecutive failed deliveries" in (ep.disabled_reason or "")


def test_rotation_dual_signs_during_the_overlap_and_both_secrets_verify(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    endpoint_id, old = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    _, new = endpoints.rotate_secret(tenant.id, endpoint_id, "test", timedelta(hours=24))
    send_message(services, tenant.principal, tenant.domain)

    dispatch(services)

    first = receiver.requests[0]
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(first.body, first.headers)
    Webhook(new).verify(first.body, first.headers)

    send_message(services, tenant.principal, tenant.domain)
    dispatch(services, datetime.now(UTC) + timedelta(hours=25))

    after = receiver.requests[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_event_committed_out_of_id_order_is_still_delivered_thanks_to_the_lookback(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    _, secret = _add(endpoints, tenant, receiver.url)
    with services.engine.begin() as conn:  # an endpoint that has existed for a while
        conn.execute(sa.update(webhook_endpoints).values(created_at=datetime.now(UTC) - timedelta(hours=1)))
    message_id = send_message(services, tenant.principal, tenant.domain)
    dispatch(services)
    with services.engine.connect() as conn:
        cursor = conn.execute(sa.text("SELECT last_event_id FROM webhook_cursors")).scalar_one()
    # An event whose id sorts before the cursor, committed only now (a slow transaction).
    late_id = outbox.id_floor("evt", outbox.id_time(cursor) - timedelta(seconds=2))[:-16] + "7" * 16
    assert late_id < cursor
    with services.engine.begin() as conn:
        conn.execute(
            sa.insert(events).values(
                id=late_id,
                tenant_id=tenant.id,
                message_id=message_id,
                recipient_id=None,
                recipient=None,
                type="message.delivered",
                seq=99,
                created_at=datetime.now(UTC),
                data={},
            )
        )

    dispatch(services)

    ids = [Webhook(secret).verify(r.body, r.headers)["data"]["event_id"] for r in receiver.requests]
    assert late_id in ids
    assert len(ids) == len(set(ids))  # the rescan of the window sent nothing twice


def test_filters_select_event_types_and_streams(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    _add(endpoints, tenant, receiver.url, event_types=["message.delivered"])
    with Receiver() as phi_only:
        _add(endpoints, tenant, phi_only.url, streams=["phi"], event_types=["message.*"])
        send_message(services, tenant.principal, tenant.domain, stream=Stream.TRANSACTIONAL)
        phi_id = send_message(services, tenant.principal, tenant.domain, stream=Stream.PHI)

        dispatch(services)

        assert receiver.requests == []
        assert [json.loads(r.body)["data"]["message_id"] for r in phi_only.requests] == [phi_id]


def test_endpoint_created_later_does_not_receive_older_events(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    send_message(services, tenant.principal, tenant.domain)
    old = outbox.id_floor("evt", datetime.now(UTC) - timedelta(minutes=1))[:-16] + new_id("x")[-16:]
    with services.engine.begin() as conn:  # the event is a minute older than the endpoint
        conn.execute(sa.update(events).values(id=old))
    _add(endpoints, tenant, receiver.url)

    dispatch(services)

    assert receiver.requests == []


def test_replay_since_resends_with_the_same_webhook_id(
    services: Services, tenant: TenantFixture, endpoints: WebhookEndpoints, receiver: Receiver
) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    endpoint_id, _ = _add(endpoints, tenant, receiver.url, streams=["transactional"])
    send_message(services, tenant.principal, tenant.domain)
    dispatch(services)

    queued = endpoints.replay_since(tenant.id, endpoint_id, start, actor="test")
    dispatch(services)

    assert queued == 1
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_endpoints)).scalar_one() == 1
