"""A consent box with a purpose writes the marketing consent ledger in the submission's
transaction, on SQLite and PostgreSQL (issue 17 with issue 16's ledger)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.forms.tables import form_submissions
from sealmail.intake.api.app import create_api
from sealmail.marketing.tables import mkt_consent_current, mkt_consent_events, mkt_contacts

TOKEN = re.compile(r'name="_token" value="([^"]+)"')
STATEMENT = "Send me news about the clinic's wellness classes."


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services), raise_server_exceptions=False) as c:
        yield c


def make_form(client: TestClient, t: TenantFixture, **field: Any) -> str:
    body = {
        "title": "Newsletter and intake",
        "recipients": ["intake@clinic.example"],
        "sender": "forms@clinic.example",
        "min_fill_seconds": 0,
        "fields": [
            {"name": "email", "label": "Email", "type": "email", "required": True},
            {"name": "news", "label": "News", "type": "consent", "text": STATEMENT, **field},
        ],
    }
    r = client.post("/v1/forms", json=body, headers={"Authorization": f"Bearer {t.api_key}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def send(client: TestClient, form_id: str, **values: str) -> int:
    hit = TOKEN.search(client.get(f"/f/{form_id}").text)
    assert hit
    r = client.post(f"/f/{form_id}", data={"_token": hit.group(1), **values}, follow_redirects=False)
    return r.status_code


def test_a_ticked_box_grants_its_purpose_with_the_statement_as_evidence(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form_id = make_form(client, tenant, purpose="marketing")
    assert send(client, form_id, email="Pat@Example.org", news="yes") == 303
    assert send(client, form_id, email="pat@example.org", news="yes") == 303
    assert send(client, form_id, email="sam@example.org") == 303  # not ticked: nothing granted
    with services.engine.connect() as conn:
        contacts = conn.execute(sa.select(mkt_contacts.c.id, mkt_contacts.c.email)).all()
        rows = conn.execute(sa.select(mkt_consent_events)).mappings().all()
        current = conn.execute(sa.select(mkt_consent_current)).mappings().all()
    assert [c.email for c in contacts] == ["pat@example.org"]
    assert len(rows) == 2 and {r["contact_id"] for r in rows} == {contacts[0].id}
    first = rows[0]
    assert (first["purpose"], first["channel"], first["action"], first["source"]) == (
        "marketing", "email", "grant", "form",
    )  # fmt: skip
    assert f"form {form_id} v1" in first["evidence"]
    assert hashlib.sha256(STATEMENT.encode()).hexdigest() in first["evidence"]
    assert first["actor"] == f"form:{form_id}"
    assert [(c["purpose"], c["state"]) for c in current] == [("marketing", "granted")]


def test_no_purpose_or_a_refused_post_writes_no_consent(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    plain = make_form(client, tenant)
    assert send(client, plain, email="pat@example.org", news="yes") == 303
    with_purpose = make_form(client, tenant, purpose="fundraising")
    assert send(client, with_purpose, email="not an address", news="yes") == 422
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(mkt_consent_events)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(form_submissions)).scalar() == 1


def test_a_purpose_only_on_a_consent_field(client: TestClient, tenant: TenantFixture) -> None:
    body = {
        "title": "x", "recipients": ["intake@clinic.example"], "sender": "forms@clinic.example",
        "fields": [{"name": "a", "label": "A", "type": "text", "purpose": "marketing"}],
    }  # fmt: skip
    r = client.post("/v1/forms", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
