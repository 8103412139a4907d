"""Forms over the API and the hosted page, on SQLite and PostgreSQL.

The hosted page is driven like a browser without JavaScript would: GET the page, take
the hidden token from the HTML, POST multipart.  What is stored is checked in the
database (sealed), in the accepted message, its event and the audit log.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant

from sealmail import audit
from sealmail.app import FORMS_KEY, Services
from sealmail.forms import timetoken
from sealmail.forms.tables import form_submissions
from sealmail.intake.api.app import create_api
from sealmail.store.tables import audit_log, events, messages

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
TOKEN = re.compile(r'name="_token" value="([^"]+)"')
SECRET_ANSWER = "Left knee pain since March"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services), raise_server_exceptions=False) as c:
        yield c


def auth(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def form_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "New patient intake",
        "recipients": ["intake@clinic.example"],
        "sender": "forms@clinic.example",
        "min_fill_seconds": 0,
        "fields": [
            {"name": "full_name", "label": "Full name", "type": "text", "required": True},
            {"name": "visit", "label": "Visit", "type": "select", "options": ["new", "follow-up"],
             "required": True},
            {"name": "reason", "label": "Reason", "type": "textarea", "required": True,
             "show_if": {"field": "visit", "equals": "new"}},
            {"name": "card", "label": "Insurance card", "type": "file", "accept": ["png", "pdf"]},
            {"name": "sig", "label": "Signature", "type": "signature", "required": True},
            {"name": "consent", "label": "Consent", "type": "consent", "text": "I agree.", "required": True},
        ],
    }  # fmt: skip
    body.update(over)
    return body


def create(client: TestClient, t: TenantFixture, **over: Any) -> dict[str, Any]:
    r = client.post("/v1/forms", json=form_body(**over), headers=auth(t))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def token_of(client: TestClient, form_id: str) -> str:
    page = client.get(f"/f/{form_id}")
    assert page.status_code == 200, page.text
    hit = TOKEN.search(page.text)
    assert hit
    return hit.group(1)


def post(client: TestClient, form_id: str, token: str | None = None, **over: Any) -> Any:
    files = over.pop("files", {"card": ("card.png", PNG, "image/png")})
    data = {
        "_token": token if token is not None else token_of(client, form_id),
        "full_name": "Pat Doe",
        "visit": "new",
        "reason": SECRET_ANSWER,
        "sig": "Pat Doe",
        "consent": "yes",
        **over,
    }
    return client.post(f"/f/{form_id}", data=data, files=files, follow_redirects=False)


def test_api_creates_versions_and_archives_a_form(client: TestClient, tenant: TenantFixture) -> None:
    form = create(client, tenant)
    assert form["current_version"] == 1 and form["url"].endswith(f"/f/{form['id']}")
    r = client.put(f"/v1/forms/{form['id']}", json=form_body(title="Intake v2"), headers=auth(tenant))
    assert r.status_code == 200 and r.json()["current_version"] == 2
    old = client.get(f"/v1/forms/{form['id']}?version=1", headers=auth(tenant)).json()
    assert old["definition"]["title"] == "New patient intake"
    listed = client.get("/v1/forms", headers=auth(tenant)).json()
    assert [f["name"] for f in listed["data"]] == ["Intake v2"]
    gone = client.delete(f"/v1/forms/{form['id']}", headers=auth(tenant))
    assert gone.json()["status"] == "archived"
    assert client.get(f"/f/{form['id']}").status_code == 404


def test_bad_definitions_get_problem_details(client: TestClient, tenant: TenantFixture) -> None:
    r = client.post("/v1/forms", json=form_body(sender="forms@unverified.example"), headers=auth(tenant))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "sender"
    r = client.post("/v1/forms", json=form_body(embed_origins=["javascript:x"]), headers=auth(tenant))
    assert r.status_code == 422


def test_forms_and_submissions_are_tenant_scoped(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form = create(client, tenant)
    other = make_tenant(services, name="Other", domain="other.example")
    assert client.get(f"/v1/forms/{form['id']}", headers=auth(other)).status_code == 404
    assert client.get(f"/v1/forms/{form['id']}/submissions", headers=auth(other)).status_code == 404
    r = client.put(f"/v1/forms/{form['id']}", json=form_body(), headers=auth(other))
    assert r.status_code == 404


def test_a_submission_is_sealed_delivered_as_a_phi_message_with_event_and_audit(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form = create(client, tenant, embed_origins=["https://www.clinic.example"])
    page = client.get(f"/f/{form['id']}")
    assert "frame-ancestors 'self' https://www.clinic.example" in page.headers["content-security-policy"]
    assert "script" not in page.headers["content-security-policy"] and "<script" not in page.text
    assert "x-frame-options" not in page.headers
    r = post(client, form["id"])
    assert r.status_code == 303, r.text
    receipt = client.get(r.headers["location"])
    assert receipt.status_code == 200 and "Reference" in receipt.text
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(form_submissions)).one()
        assert row.status == "delivered"
        assert SECRET_ANSWER.encode() not in row.content and b"Pat Doe" not in row.content
        assert row.digest in receipt.text
        msg = conn.execute(sa.select(messages).where(messages.c.id == row.message_id)).one()
        assert msg.stream == "phi"
        evt = conn.execute(sa.select(events).where(events.c.type == "form.submitted")).one()
        assert evt.message_id == row.message_id and evt.data["submission_id"] == row.id
        assert SECRET_ANSWER not in json.dumps(evt.data)
        actions = set(conn.execute(sa.select(audit_log.c.action)).scalars())
    assert {"form_submission:received", "form_submission:delivered"} <= actions
    assert audit.verify(services.engine).ok
    content = client.get(f"/v1/messages/{row.message_id}/content", headers=auth(tenant)).json()
    names = [a["filename"] for a in content["attachments"]]
    assert names == ["submission.json", "submission.pdf", "card.png"]
    assert SECRET_ANSWER in content["text"]
    got = client.get(f"/v1/forms/{form['id']}/submissions/{row.id}", headers=auth(tenant)).json()
    assert got["document"]["answers"]["reason"] == SECRET_ANSWER
    assert got["document"]["answers"]["sig"]["typed_name"] == "Pat Doe"
    assert got["document"]["answers"]["sig"]["ip"] == "testclient"
    listed = client.get(f"/v1/forms/{form['id']}/submissions", headers=auth(tenant)).json()
    assert [s["id"] for s in listed["data"]] == [row.id]


def test_invalid_answers_show_the_form_again_with_errors_and_nothing_stored(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form = create(client, tenant)
    r = post(client, form["id"], full_name="", files={"card": ("card.png", b"MZ not an image", "image/png")})
    assert r.status_code == 422
    assert "Please correct 2 fields" in r.text
    assert 'value="new" selected' in r.text  # the answers are kept
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(form_submissions)).scalar_one() == 0


def test_a_token_works_once_and_must_be_ours_old_enough_and_fresh(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form = create(client, tenant)
    token = token_of(client, form["id"])
    assert post(client, form["id"], token).status_code == 303
    assert post(client, form["id"], token).status_code == 409  # the same page again
    assert post(client, form["id"], "1.forged.0000").status_code == 409
    # A time that str.isdigit takes and int() does not ("²"), or one past int()'s 4,300 digits.
    for hostile in ("².nonce.0000", f"{'9' * 100}.nonce.0000", "٣.nonce.0000"):
        assert post(client, form["id"], hostile).status_code == 409, hostile
    key = services.site_secrets.key(FORMS_KEY)
    stale = timetoken.issue(key, form["id"], time.time() - 7201)
    assert post(client, form["id"], stale).status_code == 409
    slow = create(client, tenant, min_fill_seconds=600)
    assert post(client, slow["id"]).status_code == 409
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(form_submissions)).scalar_one() == 1


def test_the_honeypot_answers_politely_and_stores_nothing(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form = create(client, tenant)
    r = post(client, form["id"], **{"contact-website": "http://spam.example"})
    assert r.status_code == 200 and "Thank you" in r.text and "Reference" not in r.text
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(form_submissions)).scalar_one() == 0


def test_per_address_limit_and_size_limit(client: TestClient, tenant: TenantFixture) -> None:
    form = create(client, tenant, per_address_per_hour=2, max_total_bytes=2048)
    big = {"card": ("card.png", PNG + b"\x00" * 300_000, "image/png")}
    assert post(client, form["id"], files=big).status_code == 413
    assert post(client, form["id"]).status_code == 303
    r = post(client, form["id"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


def test_a_cross_site_post_is_refused(client: TestClient, tenant: TenantFixture) -> None:
    form = create(client, tenant)
    token = token_of(client, form["id"])
    r = client.post(
        f"/f/{form['id']}",
        data={"_token": token, "full_name": "x"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403


def test_a_body_the_form_parser_refuses_is_a_400_page_and_nothing_is_stored(
    client: TestClient, tenant: TenantFixture, services: Services
) -> None:
    # It was FastAPI's bare {"detail": ...} JSON in place of the form's page.
    form = create(client, tenant)
    fields = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(80)
    )
    for ctype, body in (
        ("multipart/form-data", b"no boundary"),
        ("multipart/form-data; boundary=b", fields + b"--b--\r\n"),
        ("multipart/form-data; boundary=b", b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--\r\n"),
    ):
        r = client.post(f"/f/{form['id']}", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 400, r.text[:200]
        assert r.headers["content-type"].startswith("text/html")
        assert "could not be read" in r.text
    assert client.get(f"/f/{form['id']}/nothing/here").status_code == 404
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(form_submissions)).scalar_one() == 0


def test_a_receipt_reference_cannot_be_guessed(client: TestClient, tenant: TenantFixture) -> None:
    form = create(client, tenant)
    location = post(client, form["id"]).headers["location"]
    # One character changed (replacing the last two with "00" left a reference ending in
    # "00" as it was, 1 run in 256).
    guessed = location[:-1] + ("1" if location[-1] == "0" else "0")
    assert client.get(guessed).status_code == 404
    assert client.get(location).status_code == 200


def test_the_delivered_mail_carries_json_pdf_and_the_upload(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form = create(client, tenant)
    post(client, form["id"])
    with services.engine.connect() as conn:
        mid = conn.execute(sa.select(form_submissions.c.message_id)).scalar_one()
        m = conn.execute(sa.select(messages).where(messages.c.id == mid)).one()
    raw = services.keyring.open(tenant.id, mid, m.tenant_key_id, m.wrapped_data_key, m.content)
    assert b"Form submission: New patient intake" in raw
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    parts = {p.get_filename(): p for p in msg.iter_attachments()}  # type: ignore[attr-defined]
    doc = json.loads(parts["submission.json"].get_content())
    assert doc["answers"]["reason"] == SECRET_ANSWER
    assert parts["submission.pdf"].get_content().startswith(b"%PDF-")


def test_a_submission_whose_delivery_failed_is_kept_and_delivered_later(
    client: TestClient, services: Services, tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    form = create(client, tenant)
    real = services.messages.submit

    def down(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(services.messages, "submit", down)
    r = post(client, form["id"])
    assert r.status_code == 303  # the submitter's data is stored and sealed: they get the receipt
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(form_submissions.c.status)).scalar_one() == "received"
    monkeypatch.setattr(services.messages, "submit", real)
    assert services.form_submissions.deliver_pending(older_than=timedelta(0)) == 1
    assert services.form_submissions.deliver_pending(older_than=timedelta(0)) == 0
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(form_submissions)).one()
    assert row.status == "delivered" and row.message_id
