"""The portal over real HTTP (no browser): sign-in, reading, replies, recall, expiry, CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import PATIENT, Stack, attachment, portal_stack
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.store.tables import audit_log, messages

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, db_url, dns, ca, mx) as s:
        yield s


def _csrf(page: httpx.Response) -> str:
    hit = CSRF.search(page.text)
    assert hit, page.text
    return hit.group(1)


def sign_in(stack: Stack, link: str, client: httpx.Client) -> httpx.Response:
    page = client.get(link, follow_redirects=True)
    assert page.status_code == 200, page.text
    before = len(stack.code_mails())
    page = client.post("/p/signin/code", data={"csrf": _csrf(page)}, follow_redirects=True)
    code = stack.latest_code(before)
    return client.post("/p/signin/verify", data={"csrf": _csrf(page), "code": code}, follow_redirects=True)


def test_code_sign_in_opens_the_message_and_records_view_and_audit(stack: Stack) -> None:
    pdf = b"%PDF-1.4 results " + bytes(range(256))
    mid = stack.send(attachments=[attachment("results.pdf", pdf, "application/pdf")])
    link = stack.notice_link(mid)
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, link, client)
        assert page.status_code == 200
        assert "Your lab results from March" in page.text
        assert "<title>Secure message · Riverside Clinic</title>" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]
        hold = re.search(r"/p/m/(ptl_[A-Za-z0-9]+)", str(page.url))
        assert hold
        got = client.get(f"/p/m/{hold.group(1)}/a/0")
        assert got.content == pdf
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"].startswith('attachment; filename="results.pdf"')
        reply = client.post(
            f"/p/m/{hold.group(1)}/reply",
            data={"csrf": _csrf(page), "body": "Thank you, doctor."},
            files={"files": ("question.txt", b"A question", "text/plain")},
            follow_redirects=True,
        )
        assert "Your reply was sent securely" in reply.text
        assert "Thank you, doctor." in reply.text
    types = [
        e["type"] for e in stack.services.messages.list_events(stack.tenant.principal, message_id=mid).data
    ]
    assert "portal.viewed" in types and "portal.attachment_downloaded" in types and "portal.replied" in types
    stack.run_worker()
    [received] = stack.clinic_sink.wait_for(1)
    assert received.tls and received.rcpt_tos == ("dr.smith@clinic.example",)
    assert f"Reply-To: {PATIENT}".encode() in received.data
    with stack.services.engine.connect() as conn:
        actions = set(conn.execute(sa.select(audit_log.c.action)).scalars())
    assert {"portal:viewed", "portal:attachment_downloaded", "portal:replied", "portal:signed_in"} <= actions


def test_forms_without_the_csrf_token_are_refused(stack: Stack) -> None:
    link = stack.notice_link(stack.send())
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = client.get(link, follow_redirects=True)
        assert client.post("/p/signin/code", data={}).status_code == 403
        assert client.post("/p/signin/code", data={"csrf": "0" * 64}).status_code == 403
        cross = client.post(
            "/p/signin/code", data={"csrf": _csrf(page)}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
    assert stack.code_mails() == []


def test_recall_after_reading_shows_the_recalled_page_and_shreds_the_content(stack: Stack) -> None:
    mid = stack.send()
    link = stack.notice_link(mid)
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, link, client)
        assert page.status_code == 200
        with stack.api() as api:
            r = api.post(f"/v1/messages/{mid}/recall")
            assert r.status_code == 200, r.text
            assert r.json()["recalled"] == 1
        again = client.get(str(page.url))
        assert again.status_code == 410 and "withdrawn" in again.text
        assert client.get(link).status_code == 410
    with stack.services.engine.connect() as conn:
        key = conn.execute(sa.select(messages.c.wrapped_data_key).where(messages.c.id == mid)).scalar_one()
    assert key is None


def test_expired_link_shows_the_expired_page(stack: Stack) -> None:
    mid = stack.send()
    link = stack.notice_link(mid)
    with stack.api() as api:
        past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        r = api.patch(f"/v1/messages/{mid}/portal", json={"expires_at": past})
        assert r.status_code == 200, r.text
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = client.get(link)
    assert page.status_code == 410 and "expired" in page.text


def test_another_tenant_cannot_see_or_recall_the_message(stack: Stack) -> None:
    from tests.conftest import make_tenant

    mid = stack.send()
    other = make_tenant(stack.services, name="Other", domain="other.example")
    with httpx.Client(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {other.api_key}"},
        verify=default_context(),
    ) as api:
        assert api.post(f"/v1/messages/{mid}/recall").status_code == 404
        assert api.get("/v1/portal/messages", params={"message_id": mid}).status_code == 404
        assert api.patch(f"/v1/messages/{mid}/portal", json={"passphrase": "long enough"}).status_code == 404


def test_a_reply_to_a_noreply_sender_reaches_the_senders_reply_mailbox(stack: Stack) -> None:
    boxes = {"reply_mailboxes": {"noreply@clinic.example": "nurses@clinic.example"}}
    stack.services.tenancy.update_settings(stack.tenant.id, boxes, actor="test")
    mid = stack.send(**{"from": "Riverside Clinic <noreply@clinic.example>"})
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        page = sign_in(stack, stack.notice_link(mid), client)
        hold = re.search(r"/p/m/(ptl_[A-Za-z0-9]+)", str(page.url))
        assert hold
        reply = client.post(
            f"/p/m/{hold.group(1)}/reply", data={"csrf": _csrf(page), "body": "Is this normal?"},
            follow_redirects=True,
        )  # fmt: skip
        assert "Your reply was sent securely" in reply.text
    stack.run_worker()
    [received] = stack.clinic_sink.wait_for(1)
    assert received.rcpt_tos == ("nurses@clinic.example",)
    assert received.tls
