"""Batch and bulk sending over HTTP: per-item and per-recipient outcomes, never all-or-nothing."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.templates.conftest import APPOINTMENT, auth

from sealmail.app import Services
from sealmail.messages.schemas import message_page
from sealmail.store.tables import messages


def item(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "from": "Clinic <noreply@clinic.example>",
        "to": ["patient@example.net"],
        "subject": "Hello",
        "text": "Plain",
        "stream": "phi",
    }
    base.update(over)
    return base


def message_count(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one())


def test_batch_returns_one_ordered_result_per_item_and_bad_items_do_not_block_good_ones(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    batch = [
        item(),
        item(to=["not an address"]),
        item(
            template="appointment",
            subject="",
            text=None,
            template_data={"first_name": "Ana", "when": "Mon", "ref": "r1"},
        ),
        item(template="appointment", subject="", text=None, template_data={"when": "Tue"}),
        {"from": "x@clinic.example", "unknown_field": 1},
        item(template="missing", subject="", text=None, template_data={}),
        item(subject="Hi {{ n }}", text="Dear {{ n }}", template_data={"n": "Bo"}),
    ]
    resp = client.post("/v1/messages/batch", json={"messages": batch}, headers=auth(tenant))
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert [r["index"] for r in data["data"]] == list(range(7))
    assert [r["status"] for r in data["data"]] == [202, 422, 202, 422, 422, 404, 202]
    assert data["accepted"] == 3 and data["failed"] == 4
    assert data["data"][0]["message"]["id"].startswith("msg_")
    bad_address = data["data"][1]["problem"]
    assert bad_address["type"].endswith("/validation-failed") and bad_address["errors"][0]["field"] == "to[0]"
    assert "'first_name' is undefined" in data["data"][3]["problem"]["errors"][0]["message"]
    assert data["data"][4]["problem"]["errors"][0]["field"] == "unknown_field"
    assert message_count(services) == 3
    rendered = services.messages.content(tenant.principal, data["data"][6]["message"]["id"])
    assert rendered.subject == "Hi Bo"


def test_batch_with_an_idempotency_key_replays_items_on_retry(
    client: TestClient, tenant: TenantFixture
) -> None:
    headers = {**auth(tenant), "Idempotency-Key": "batch-1"}
    first = client.post("/v1/messages/batch", json={"messages": [item(), item()]}, headers=headers).json()
    again = client.post("/v1/messages/batch", json={"messages": [item(), item()]}, headers=headers).json()
    assert [r["replayed"] for r in again["data"]] == [True, True]
    assert [r["message"]["id"] for r in again["data"]] == [r["message"]["id"] for r in first["data"]]


def test_batch_of_more_than_500_is_refused(client: TestClient, tenant: TenantFixture) -> None:
    resp = client.post("/v1/messages/batch", json={"messages": [item()] * 501}, headers=auth(tenant))
    assert resp.status_code == 422


def bulk_body(recipients: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "Clinic <noreply@clinic.example>",
        "template": "appointment",
        "template_data": {"when": "June 1"},
        "stream": "phi",
        "recipients": recipients,
    }
    body.update(over)
    return body


def test_bulk_records_per_recipient_errors_and_accepts_everyone_else(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    recipients = [
        {"to": "ana@example.net", "template_data": {"first_name": "Ana", "ref": "a"}},
        {"to": "bo@example.net", "template_data": {"ref": "b"}},  # no first_name
        {"to": "bad address", "template_data": {"first_name": "X", "ref": "c"}},
        {"to": "cy@example.net", "template_data": {"first_name": "Cy", "ref": "d", "when": "June 2"}},
    ]
    resp = client.post("/v1/messages/bulk", json=bulk_body(recipients), headers=auth(tenant))
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["id"].startswith("blk_") and resp.headers["location"] == f"/v1/bulk/{job['id']}"
    assert (job["status"], job["total"], job["accepted"], job["failed"]) == ("completed", 4, 2, 2)
    assert job["template"] == {"name": "appointment", "version": 1}
    got = client.get(f"/v1/bulk/{job['id']}", headers=auth(tenant)).json()
    assert [(e["index"], e["field"]) for e in got["errors"]] == [(1, "template_data"), (2, "to[0]")]
    assert "'first_name' is undefined" in got["errors"][0]["message"]
    # Nothing was stored for the failed recipients: only two messages exist.
    assert message_count(services) == 2
    page = message_page(services.messages.search(tenant.principal, limit=10))["data"]
    subjects = sorted(services.messages.content(tenant.principal, m["id"]).subject for m in page)
    assert subjects == ["Appointment on June 1", "Appointment on June 2"]
    assert all(m["metadata"]["bulk_id"] == job["id"] for m in page)


def test_bulk_error_pages_hold_whole_recipients(client: TestClient, tenant: TenantFixture) -> None:
    client.post("/v1/templates", json=APPOINTMENT, headers=auth(tenant))
    recipients = [{"to": f"p{i}@example.net", "template_data": {}} for i in range(5)]
    job = client.post("/v1/messages/bulk", json=bulk_body(recipients), headers=auth(tenant)).json()
    assert job["failed"] == 5
    seen: list[int] = []
    cursor = ""
    while True:
        page = client.get(f"/v1/bulk/{job['id']}?limit=2{cursor}", headers=auth(tenant)).json()
        seen += [e["index"] for e in page["errors"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == [0, 1, 2, 3, 4]


def test_bulk_with_inline_content_escapes_variables_in_html(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    body = bulk_body(
        [{"to": "ana@example.net", "template_data": {"name": "<img src=x onerror=alert(1)>"}}],
        template=None,
        subject="Hi",
        html="<p>Hello {{ name }}</p>",
    )
    job = client.post("/v1/messages/bulk", json=body, headers=auth(tenant)).json()
    assert job["accepted"] == 1, job
    [msg] = message_page(services.messages.search(tenant.principal, limit=1))["data"]
    content = services.messages.content(tenant.principal, msg["id"])
    assert "&lt;img src=x onerror=alert(1)&gt;" in content.html
    assert "<img" not in content.html


def test_bulk_refuses_a_bad_sender_or_missing_template_for_the_whole_request(
    client: TestClient, tenant: TenantFixture
) -> None:
    rcpts = [{"to": "a@example.net"}]
    assert client.post("/v1/messages/bulk", json=bulk_body(rcpts), headers=auth(tenant)).status_code == 404
    bad_from = bulk_body(rcpts, **{"from": "nobody", "template": None, "subject": "s", "text": "t"})
    assert client.post("/v1/messages/bulk", json=bad_from, headers=auth(tenant)).status_code == 422


def test_another_tenants_bulk_job_is_not_found(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    body = bulk_body([{"to": "a@example.net"}], template=None, subject="s", text="t")
    job = client.post("/v1/messages/bulk", json=body, headers=auth(tenant)).json()
    other = make_tenant(services, "Other", "other.example")
    assert client.get(f"/v1/bulk/{job['id']}", headers=auth(other)).status_code == 404
    assert client.get(f"/v1/bulk/{job['id']}", headers=auth(tenant)).status_code == 200
