"""Intake rejects suppressed recipients (``message.rejected``) and queues the rest.

Through every door that ends in ``Messages.accept``: the REST API, batch sending and the
SMTP gateway; on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.intake.test_smtp_gateway import authenticated, message, queued_id
from tests.integration.intake.test_smtp_gateway import send as smtp_send
from tests.integration.suppressions.conftest import auth, send

from sealmail.app import Services
from sealmail.intake.smtp import SmtpGateway
from sealmail.messages import queue
from sealmail.messages.schemas import message_body
from sealmail.store.tables import audit_log
from sealmail.suppressions import service as sp


def suppress(services: Services, t: TenantFixture, address: str, stream: str = "*", **kw: Any) -> None:
    with services.engine.begin() as conn:
        written = sp.suppress(
            conn,
            tenant_id=t.id,
            stream=stream,
            address=address,
            reason=kw.pop("reason", sp.SuppressionReason.MANUAL),
            source="test",
            actor="test",
            **kw,
        )
    assert written


def recipients(services: Services, t: TenantFixture, mid: str) -> dict[str, dict[str, Any]]:
    return {r["email"]: r for r in message_body(services.messages.get(t.principal, mid))["recipients"]}


def events(services: Services, t: TenantFixture, mid: str) -> list[dict[str, Any]]:
    data = services.messages.list_events(t.principal, message_id=mid).data
    return sorted(data, key=lambda e: e["sequence"])


def test_suppressed_recipient_is_rejected_with_an_event_and_the_others_are_queued(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "Jane@Example.net", reason=sp.SuppressionReason.HARD_BOUNCE)
    resp = send(api, tenant, ["jane@example.NET", "bob@example.net"])
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "queued"
    assert {r["email"]: r["status"] for r in body["recipients"]} == {
        "jane@example.net": "rejected",
        "bob@example.net": "queued",
    }
    rcpts = recipients(services, tenant, body["id"])
    jane = rcpts["jane@example.net"]
    assert (jane["status"], jane["last_reason"], jane["next_attempt_at"]) == ("rejected", "suppressed", None)
    assert rcpts["bob@example.net"]["status"] == "queued"
    got = events(services, tenant, body["id"])
    assert [(e["type"], e["sequence"]) for e in got] == [
        ("message.accepted", 1),
        ("message.accepted", 2),
        ("message.rejected", 3),
    ]
    rejected = got[-1]
    assert rejected["recipient_id"] == jane["id"]
    assert rejected["data"] == {"reason": "suppressed", "suppression": "hard_bounce"}
    # The queue never hands the rejected recipient to a worker.
    claimed = queue.claim(services.engine, "w-test", 10, 60)
    assert [c.id for c in claimed] == [rcpts["bob@example.net"]["id"]]


def test_a_message_whose_every_recipient_is_suppressed_is_rejected_whole(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "jane@example.net")
    body = send(api, tenant, ["jane@example.net"]).json()
    assert body["status"] == "rejected"
    assert message_body(services.messages.get(tenant.principal, body["id"]))["status"] == "rejected"
    assert queue.claim(services.engine, "w-test", 10, 60) == []


def test_an_expired_suppression_no_longer_applies(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    past = datetime.now(UTC) - timedelta(days=31)
    suppress(services, tenant, "jane@example.net", expires_at=past + timedelta(days=30), now=past)
    body = send(api, tenant, ["jane@example.net"]).json()
    assert body["recipients"][0]["status"] == "queued"
    assert [e["type"] for e in events(services, tenant, body["id"])] == ["message.accepted"]


def test_a_stream_suppression_applies_to_that_stream_only_and_star_to_all(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "unsub@example.net", "broadcast", reason=sp.SuppressionReason.UNSUBSCRIBE)
    suppress(services, tenant, "gone@example.net", "*", reason=sp.SuppressionReason.HARD_BOUNCE)
    to = ["unsub@example.net", "gone@example.net"]
    by_stream = {}
    for stream in ("transactional", "phi", "broadcast"):
        body = send(api, tenant, to, stream=stream).json()
        by_stream[stream] = {r["email"]: r["status"] for r in body["recipients"]}
    assert by_stream["transactional"] == {"unsub@example.net": "queued", "gone@example.net": "rejected"}
    assert by_stream["phi"] == {"unsub@example.net": "queued", "gone@example.net": "rejected"}
    assert by_stream["broadcast"] == {"unsub@example.net": "rejected", "gone@example.net": "rejected"}


def test_another_tenants_suppression_does_not_apply(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    other = make_tenant(services, "Other", "other.example")
    suppress(services, other, "jane@example.net")
    body = send(api, tenant, ["jane@example.net"]).json()
    assert body["recipients"][0]["status"] == "queued"


def test_bypass_is_audited_and_refused_on_the_broadcast_stream(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "jane@example.net")
    body = send(api, tenant, ["jane@example.net"], bypass_suppressions=True).json()
    assert body["recipients"][0]["status"] == "queued"
    with services.engine.connect() as conn:
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == "message:suppressions_bypassed")
        ).one()
    assert entry.target == body["id"] and entry.tenant_id == tenant.id
    refused = send(api, tenant, ["jane@example.net"], stream="broadcast", bypass_suppressions=True)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "bypass_suppressions"


def test_one_lookup_per_accepted_message_whatever_the_recipient_count(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "p7@example.net")
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM suppressions" in statement:
            statements.append(statement)

    sa.event.listen(services.engine, "before_cursor_execute", count)
    try:
        body = send(api, tenant, [f"p{i}@example.net" for i in range(40)]).json()
    finally:
        sa.event.remove(services.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    rejected = [r["email"] for r in body["recipients"] if r["status"] == "rejected"]
    assert rejected == ["p7@example.net"]


def test_an_idempotent_replay_answers_with_the_rejection(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "jane@example.net")
    payload = {
        "from": f"noreply@{tenant.domain}",
        "to": ["jane@example.net", "bob@example.net"],
        "subject": "s",
        "text": "t",
    }
    headers = {**auth(tenant), "Idempotency-Key": "k-1"}
    first = api.post("/v1/messages", json=payload, headers=headers)
    again = api.post("/v1/messages", json=payload, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    assert {r["status"] for r in again.json()["recipients"]} == {"rejected", "queued"}


def test_batch_items_go_through_the_same_check(
    api: TestClient, services: Services, tenant: TenantFixture
) -> None:
    suppress(services, tenant, "jane@example.net")
    item = {"from": f"noreply@{tenant.domain}", "subject": "s", "text": "t"}
    resp = api.post(
        "/v1/messages/batch",
        json={"messages": [{**item, "to": [f"p{i}@example.net", "jane@example.net"]} for i in range(6)]},
        headers=auth(tenant),
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["data"]
    assert len(results) == 6
    for result in results:
        statuses = {r["email"]: r["status"] for r in result["message"]["recipients"]}
        assert statuses["jane@example.net"] == "rejected"
        assert list(statuses.values()).count("queued") == 1
    rejected = services.messages.list_events(tenant.principal, type_="message.rejected").data
    assert len(rejected) == 6


def test_smtp_submission_to_a_suppressed_recipient_is_accepted_but_that_recipient_rejected(
    gateway: SmtpGateway,
    connect: Any,
    credential: tuple[str, str, str],
    services: Services,
    tenant: TenantFixture,
) -> None:
    suppress(services, tenant, "patient@example.org")
    client = authenticated(connect, gateway, credential)
    mid = queued_id(*smtp_send(client, message(), rcpts=("patient@example.org", "nurse@example.net")))
    rcpts = recipients(services, tenant, mid)
    assert rcpts["patient@example.org"]["status"] == "rejected"
    assert rcpts["nurse@example.net"]["status"] == "queued"
    assert [e["type"] for e in events(services, tenant, mid)][-1] == "message.rejected"


def test_a_batch_lookup_over_several_tenants_keeps_each_tenants_list_apart(
    services: Services, tenant: TenantFixture
) -> None:
    other = make_tenant(services, "Other", "other.example")
    suppress(services, tenant, "b@example.net")
    suppress(services, other, "a@example.net", "phi")
    with services.engine.connect() as conn:
        crossed = sp.lookup(conn, [(tenant.id, "a@example.net"), (other.id, "b@example.net")])
        straight = sp.lookup(conn, [(tenant.id, "B@example.net"), (other.id, "a@example.net")])
    assert crossed == {}
    assert straight == {
        (tenant.id, "b@example.net"): {"*": sp.SuppressionReason.MANUAL},
        (other.id, "a@example.net"): {"phi": sp.SuppressionReason.MANUAL},
    }
