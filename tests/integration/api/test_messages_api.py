"""The REST API end to end against a real database: intake, errors, isolation, audit."""

from __future__ import annotations

import asyncio
import base64
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant

from sealmail import audit
from sealmail.app import Services
from sealmail.errors import IdempotencyConflict
from sealmail.intake.api.app import create_api
from sealmail.messages import compose
from sealmail.messages.accept import Accepted
from sealmail.messages.schemas import MessageIn
from sealmail.messages.submission import Idempotency, request_hash
from sealmail.store.tables import audit_log, events, idempotency_keys, messages, recipients


@pytest.fixture
def client(services: Services) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)


def auth(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def body(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "from": "Clinic <noreply@clinic.example>",
        "to": ["patient@example.net"],
        "subject": "Your lab results",
        "text": "Hello",
        "stream": "phi",
    }
    base.update(over)
    return base


def count(services: Services, table: sa.Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_accepted_message_is_committed_with_recipients_events_and_audit(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    before = count(services, audit_log)
    resp = client.post(
        "/v1/messages",
        json=body(cc=["Nurse <nurse@example.org>"], bcc=["records@example.org"]),
        headers=auth(tenant),
    )
    assert resp.status_code == 202, resp.text
    data = resp.json()
    assert data["id"].startswith("msg_")
    assert [r["email"] for r in data["recipients"]] == [
        "patient@example.net",
        "nurse@example.org",
        "records@example.org",
    ]
    got = client.get(f"/v1/messages/{data['id']}", headers=auth(tenant)).json()
    assert {r["status"] for r in got["recipients"]} == {"queued"}
    evs = client.get("/v1/events", params={"message_id": data["id"]}, headers=auth(tenant)).json()
    assert [e["type"] for e in evs["data"]] == ["message.accepted"] * 3
    assert sorted(e["sequence"] for e in evs["data"]) == [1, 2, 3]
    assert count(services, audit_log) == before + 1


def test_bcc_is_not_in_the_stored_headers(client: TestClient, tenant: TenantFixture) -> None:
    resp = client.post("/v1/messages", json=body(bcc=["secret@example.org"]), headers=auth(tenant))
    content = client.get(f"/v1/messages/{resp.json()['id']}/content", headers=auth(tenant)).json()
    assert content["subject"] == "Your lab results"
    assert content["text"].strip() == "Hello"
    assert not any("secret@" in v for v in content["to"] + content["cc"])


@pytest.mark.hipaa("164.312(a)(2)(iv)")
def test_content_is_encrypted_at_rest(client: TestClient, services: Services, tenant: TenantFixture) -> None:
    resp = client.post(
        "/v1/messages", json=body(subject="Diagnosis XYZZY-42", text="PLUGH body"), headers=auth(tenant)
    )
    with services.engine.connect() as conn:
        blob = conn.execute(
            sa.select(messages.c.content).where(messages.c.id == resp.json()["id"])
        ).scalar_one()
    assert b"XYZZY" not in blob and b"PLUGH" not in blob
    assert len(blob) > 28


@pytest.mark.hipaa("164.312(b)")
def test_content_read_is_audited(client: TestClient, services: Services, tenant: TenantFixture) -> None:
    mid = client.post("/v1/messages", json=body(), headers=auth(tenant)).json()["id"]
    client.get(f"/v1/messages/{mid}/content", headers=auth(tenant))
    with services.engine.connect() as conn:
        actions = [
            r.action
            for r in conn.execute(
                sa.select(audit_log.c.action).where(audit_log.c.target == mid).order_by(audit_log.c.seq)
            )
        ]
    assert actions == ["message:accepted", "message:content_read"]


def test_idempotent_retry_returns_the_first_result(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    headers = {**auth(tenant), "Idempotency-Key": "appt-8812"}
    first = client.post("/v1/messages", json=body(), headers=headers)
    again = client.post("/v1/messages", json=body(), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert count(services, messages) == 1
    other = client.post("/v1/messages", json=body(subject="different"), headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert count(services, messages) == 1


def test_idempotency_keys_are_per_tenant(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    other = make_tenant(services, "Other", "other.example")
    headers = {"Idempotency-Key": "same-key"}
    a = client.post("/v1/messages", json=body(), headers={**auth(tenant), **headers})
    b = client.post(
        "/v1/messages", json=body(**{"from": "x@other.example"}), headers={**auth(other), **headers}
    )
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


def test_many_keys_are_replayed_in_one_lookup_per_tenant_and_a_changed_body_conflicts(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    other = make_tenant(services, "Other", "other.example")
    first = client.post("/v1/messages", json=body(), headers={**auth(tenant), "Idempotency-Key": "k1"})
    assert first.status_code == 202
    with services.engine.connect() as conn:
        stored = conn.execute(sa.select(idempotency_keys.c.request_hash)).scalar_one()
    msgs = services.messages
    keys = [Idempotency("k1", stored), Idempotency("k2", stored)]
    found = msgs.replayed_many(tenant.id, keys)
    assert list(found) == ["k1"] and found["k1"].id == first.json()["id"]
    assert msgs.replayed_many(other.id, keys) == {}  # another tenant's key is not this one's
    with pytest.raises(IdempotencyConflict):
        msgs.replayed_many(tenant.id, [Idempotency("k1", "another body")])


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        (body(to=["patient@example.net", "not-an-address"]), 422, "to[1]"),
        (body(to=["a@exa mple.com"]), 422, "to[0]"),
        (body(**{"from": "noreply@unverified.example"}), 422, "from"),
        (body(text=None), 422, "text"),
        (body(to=[], cc=[], bcc=[]), 422, "to"),
        (
            body(
                attachments=[
                    {"filename": "a.pdf", "content_type": "application/pdf", "content": "!!!not base64"}
                ]
            ),
            422,
            "attachments[0].content",
        ),
        (body(headers={"X-Note": "a\r\nBcc: evil@example.com"}), 422, "headers"),
        (body(headers={"From": "spoof@example.com"}), 422, "headers"),
        (body(tls_policy="opportunistic"), 422, "tls_policy"),
        (body(stream="marketing"), 422, "stream"),
        (body(unknown_field=1), 422, "unknown_field"),
        (body(to=[f"p{i}@example.net" for i in range(1001)]), 422, "to"),
        (body(send_at="2026-01-01T09:00:00"), 422, "send_at"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(
    client: TestClient,
    services: Services,
    tenant: TenantFixture,
    payload: dict[str, Any],
    status: int,
    field: str,
) -> None:
    resp = client.post("/v1/messages", json=payload, headers=auth(tenant))
    assert resp.status_code == status, resp.text
    problem = resp.json()
    assert resp.headers["content-type"].startswith("application/problem+json")
    fields = [e["field"] for e in problem.get("errors", [])]
    assert any(f.startswith(field) for f in fields), problem
    assert count(services, messages) == 0
    assert count(services, recipients) == 0
    assert count(services, events) == 0


def test_malformed_json_is_400(client: TestClient, services: Services, tenant: TenantFixture) -> None:
    resp = client.post(
        "/v1/messages",
        content=b'{"from": "a@clinic.example", "to": [',
        headers={**auth(tenant), "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["type"].endswith("malformed-json")
    assert count(services, messages) == 0


def test_non_json_body_is_415(client: TestClient, tenant: TenantFixture) -> None:
    resp = client.post(
        "/v1/messages",
        content=b"from=a",
        headers={**auth(tenant), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 415


def test_oversized_payload_is_413_and_stores_nothing(services: Services, tenant: TenantFixture) -> None:
    services.settings.max_request_bytes = 50_000
    client = TestClient(create_api(services), raise_server_exceptions=False)
    big = base64.b64encode(b"x" * 60_000).decode()
    resp = client.post(
        "/v1/messages", json=body(attachments=[{"filename": "big.bin", "content": big}]), headers=auth(tenant)
    )
    assert resp.status_code == 413
    assert resp.json()["status"] == 413
    assert count(services, messages) == 0


@pytest.mark.hipaa("164.312(d)")
def test_missing_or_wrong_credentials_are_401(client: TestClient, tenant: TenantFixture) -> None:
    assert client.post("/v1/messages", json=body()).status_code == 401
    bad = tenant.api_key[:-3] + "xyz"
    assert (
        client.post("/v1/messages", json=body(), headers={"Authorization": f"Bearer {bad}"}).status_code
        == 401
    )
    assert client.get("/v1/messages", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_the_bearer_scheme_is_read_as_http_says(client: TestClient, tenant: TenantFixture) -> None:
    # RFC 9110 §11.1: the scheme is case-insensitive; the token may not be missing.
    ok = client.get("/v1/messages", headers={"Authorization": f"bEaReR   {tenant.api_key}  "})
    assert ok.status_code == 200
    refused = [
        client.get("/v1/messages", headers={"Authorization": value})
        for value in (f"Basic {tenant.api_key}", "Bearer", "Bearer   ", tenant.api_key, "")
    ]
    assert {r.status_code for r in refused} == {401}
    assert {r.headers["www-authenticate"] for r in refused} == {"Bearer"}
    assert {r.json()["detail"] for r in refused} == {"send `Authorization: Bearer <API key>`"}


def test_scopes_limit_what_a_key_can_do(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    _, read_only = services.tenancy.create_api_key(tenant.id, "ro", ["read"], actor="test")
    _, send_only = services.tenancy.create_api_key(tenant.id, "so", ["send"], actor="test")
    assert (
        client.post("/v1/messages", json=body(), headers={"Authorization": f"Bearer {read_only}"}).status_code
        == 403
    )
    sent = client.post("/v1/messages", json=body(), headers={"Authorization": f"Bearer {send_only}"})
    assert sent.status_code == 202
    assert (
        client.get(
            f"/v1/messages/{sent.json()['id']}", headers={"Authorization": f"Bearer {send_only}"}
        ).status_code
        == 403
    )


@pytest.mark.hipaa("164.312(d)")
def test_revoked_key_stops_working(client: TestClient, services: Services, tenant: TenantFixture) -> None:
    key_id, key = services.tenancy.create_api_key(tenant.id, "tmp", ["send", "read"], actor="test")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/messages", headers=headers).status_code == 200
    services.tenancy.revoke_api_key(tenant.id, key_id, actor="test")
    assert client.get("/v1/messages", headers=headers).status_code == 401


@pytest.mark.hipaa("164.312(a)(1)")
def test_tenant_cannot_read_list_cancel_or_infer_another_tenants_messages(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    other = make_tenant(services, "Other Org", "other.example")
    mid = client.post("/v1/messages", json=body(tags=["labs"]), headers=auth(tenant)).json()["id"]
    for method, path in [
        ("GET", f"/v1/messages/{mid}"),
        ("GET", f"/v1/messages/{mid}/content"),
        ("POST", f"/v1/messages/{mid}/cancel"),
    ]:
        resp = client.request(method, path, headers=auth(other))
        assert resp.status_code == 404, (path, resp.status_code)
        # Same answer as for an id that does not exist: nothing to infer.
        missing = client.request(
            method, path.replace(mid, "msg_00000000000000000000000000"), headers=auth(other)
        )
        assert missing.json()["title"] == resp.json()["title"]
    assert client.get("/v1/messages", headers=auth(other)).json()["data"] == []
    assert (
        client.get("/v1/messages", params={"recipient": "patient@example.net"}, headers=auth(other)).json()[
            "data"
        ]
        == []
    )
    assert client.get("/v1/messages", params={"tag": "labs"}, headers=auth(other)).json()["data"] == []
    assert client.get("/v1/events", params={"message_id": mid}, headers=auth(other)).json()["data"] == []
    assert client.get("/v1/events", headers=auth(other)).json()["data"] == []
    assert client.get("/v1/captured", headers=auth(other)).json()["data"] == []
    # And the owner still sees it, uncancelled.
    got = client.get(f"/v1/messages/{mid}", headers=auth(tenant)).json()
    assert got["recipients"][0]["status"] == "queued"


def test_cancel_stops_queued_recipients_once(client: TestClient, tenant: TenantFixture) -> None:
    mid = client.post("/v1/messages", json=body(send_at="2099-01-01T00:00:00Z"), headers=auth(tenant))
    assert mid.status_code == 422  # more than 30 days ahead
    mid = client.post(
        "/v1/messages", json=body(to=["a@example.net", "b@example.net"]), headers=auth(tenant)
    ).json()["id"]
    resp = client.post(f"/v1/messages/{mid}/cancel", headers=auth(tenant))
    assert resp.status_code == 200
    assert len(resp.json()["cancelled"]) == 2
    again = client.post(f"/v1/messages/{mid}/cancel", headers=auth(tenant))
    assert again.status_code == 409
    types = [
        e["type"]
        for e in client.get("/v1/events", params={"message_id": mid}, headers=auth(tenant)).json()["data"]
    ]
    assert types.count("message.cancelled") == 2


def test_search_paginates_with_a_cursor_and_filters(client: TestClient, tenant: TenantFixture) -> None:
    ids = [
        client.post("/v1/messages", json=body(tags=["t1"] if i % 2 else []), headers=auth(tenant)).json()[
            "id"
        ]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/messages", params=params, headers=auth(tenant)).json()
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    tagged = client.get("/v1/messages", params={"tag": "t1"}, headers=auth(tenant)).json()["data"]
    assert {m["id"] for m in tagged} == {ids[1], ids[3]}


def test_raw_message_is_accepted_like_a_structured_one(client: TestClient, tenant: TenantFixture) -> None:
    raw = (
        b"From: Clinic <noreply@clinic.example>\r\nTo: patient@example.net\r\n"
        b"Subject: Raw hello\r\n\r\nRaw body\r\n"
    )
    resp = client.post(
        "/v1/messages/raw",
        json={
            "envelope": {"mail_from": "noreply@clinic.example", "rcpt_to": ["patient@example.net"]},
            "message": base64.b64encode(raw).decode(),
            "stream": "phi",
        },
        headers=auth(tenant),
    )
    assert resp.status_code == 202, resp.text
    mid = resp.json()["id"]
    content = client.get(f"/v1/messages/{mid}/content", headers=auth(tenant)).json()
    assert content["subject"] == "Raw hello"
    assert resp.json()["message_id_header"].startswith("<")


def test_idn_recipient_is_routed_by_its_ascii_domain(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    resp = client.post("/v1/messages", json=body(to=["patient@bücher.example"]), headers=auth(tenant))
    assert resp.status_code == 202, resp.text
    with services.engine.connect() as conn:
        domain = conn.execute(sa.select(recipients.c.domain)).scalar_one()
    assert domain == "xn--bcher-kva.example"


@pytest.mark.hipaa("164.312(b)")
def test_audit_chain_verifies_and_detects_tampering(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    for _ in range(3):
        client.post("/v1/messages", json=body(), headers=auth(tenant))
    assert audit.verify(services.engine).ok
    with services.engine.begin() as conn:
        seq = conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar_one() - 1
        conn.execute(sa.update(audit_log).where(audit_log.c.seq == seq).values(actor="someone-else"))
    result = audit.verify(services.engine)
    assert not result.ok and result.first_bad_seq == seq and "edited" in result.problem


@pytest.mark.hipaa("164.312(b)")
def test_audit_verify_reports_a_deleted_entry(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    for _ in range(3):
        client.post("/v1/messages", json=body(), headers=auth(tenant))
    with services.engine.begin() as conn:
        conn.execute(sa.delete(audit_log).where(audit_log.c.seq == 3))
    result = audit.verify(services.engine)
    assert not result.ok and result.first_bad_seq == 3


def test_openapi_document_lists_the_endpoints(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path in (
        "/v1/messages",
        "/v1/messages/raw",
        "/v1/messages/{message_id}",
        "/v1/messages/{message_id}/cancel",
        "/v1/events",
    ):
        assert path in doc["paths"]


def test_two_requests_racing_with_one_idempotency_key_store_one_message_and_replay_it(
    services: Services, tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    msgs = services.messages
    looked_up = msgs._idempotent_replay
    both_missed = threading.Barrier(2)
    calls = 0

    def replay_after_both_looked(tenant_id: str, idem: Idempotency) -> dict[str, Any] | None:
        # The first two look-ups both find nothing before either request goes on: the race
        # the unique key settles at the commit.
        nonlocal calls
        calls += 1
        found = looked_up(tenant_id, idem)
        if calls <= 2:
            both_missed.wait(10)
        return found

    monkeypatch.setattr(msgs, "_idempotent_replay", replay_after_both_looked)
    idem = Idempotency("raced", request_hash(b"the same body"))

    async def race() -> list[tuple[Accepted, bool]]:
        sub = compose.from_message(MessageIn.model_validate(body()), "test.local", 100)
        return list(await asyncio.gather(*(msgs.submit_async(tenant.principal, sub, idem) for _ in range(2))))

    results = asyncio.run(race())
    assert sorted(replayed for _, replayed in results) == [False, True]
    assert results[0][0].id == results[1][0].id
    assert count(services, messages) == count(services, idempotency_keys) == 1
    with services.engine.connect() as conn:
        accepted = conn.execute(
            sa.select(sa.func.count()).where(audit_log.c.action == "message:accepted")
        ).scalar_one()
    assert accepted == 1
