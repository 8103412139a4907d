"""Rotating a tenant key rewraps every sealed column — messages, form submissions, texts —
then retires the old key: its row is gone, and everything still opens under the new one.
On SQLite and PostgreSQL (the ``services`` fixture)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.sms.conftest import noon_zone

from sealmail.app import Services
from sealmail.forms.tables import form_submissions
from sealmail.intake.api.app import create_api
from sealmail.sms.rules import Template
from sealmail.sms.service import TextRequest
from sealmail.sms.tables import sms_texts
from sealmail.store.tables import messages, tenant_keys

TOKEN = re.compile(r'name="_token" value="([^"]+)"')


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services), raise_server_exceptions=False) as c:
        yield c


def _submit_form(client: TestClient, tenant: TenantFixture, answer: str) -> str:
    body = {
        "title": "Intake", "recipients": ["intake@clinic.example"], "sender": "forms@clinic.example",
        "min_fill_seconds": 0,
        "fields": [{"name": "reason", "label": "Reason", "type": "textarea", "required": True}],
    }  # fmt: skip
    r = client.post("/v1/forms", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert r.status_code == 201, r.text
    form_id = str(r.json()["id"])
    hit = TOKEN.search(client.get(f"/f/{form_id}").text)
    assert hit
    r = client.post(f"/f/{form_id}", data={"_token": hit.group(1), "reason": answer}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return form_id


def _key_ids(services: Services, tenant_id: str) -> set[str]:
    with services.engine.connect() as conn:
        return set(
            conn.execute(sa.select(tenant_keys.c.id).where(tenant_keys.c.tenant_id == tenant_id)).scalars()
        )


def test_rotation_rewraps_submissions_and_texts_and_retires_the_old_key(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form_id = _submit_form(client, tenant, "knee pain since Tuesday")
    services.texting.add_sender(tenant.id, "+14155550100", "test")
    services.texting.put_contact(
        tenant.id, "+14155550177", time_zone=noon_zone(), address="pat@example.net",
        notice="both", consents={"notice": True}, actor="test",
    )  # fmt: skip
    link = "http://127.0.0.1:8000/p/" + "Zx9_-" * 9
    text = services.texting.queue(
        TextRequest(tenant.id, "+14155550177", Template.NOTICE, "Clinic", link=link)
    )
    [old_key] = _key_ids(services, tenant.id)

    rotation = services.key_rotation.rotate(tenant.id)
    assert rotation.key_id != old_key
    assert rotation.rewrapped["form_submissions.key_id"] == 1
    assert rotation.rewrapped["sms_texts.key_id"] == 1
    assert rotation.rewrapped["messages.tenant_key_id"] >= 1  # the message that delivered the form
    retirement = services.key_rotation.retire(tenant.id)
    assert retirement.retired == [old_key]
    assert retirement.kept == []
    assert _key_ids(services, tenant.id) == {rotation.key_id}

    with services.engine.connect() as conn:
        used = {
            *conn.execute(sa.select(form_submissions.c.key_id)).scalars(),
            *conn.execute(sa.select(sms_texts.c.key_id)).scalars(),
            *conn.execute(
                sa.select(messages.c.tenant_key_id).where(messages.c.tenant_id == tenant.id)
            ).scalars(),
        }
        row = conn.execute(sa.select(sms_texts).where(sms_texts.c.id == text.sms_id)).one()
    assert used == {rotation.key_id}
    # Opened through a keyring that never cached the old key: only the new key is reachable.
    services.keyring.forget([rotation.key_id])
    [listed] = services.form_submissions.list(tenant.principal, form_id)["data"]
    read = services.form_submissions.read(tenant.principal, form_id, listed["id"])
    assert read["document"]["answers"]["reason"] == "knee pain since Tuesday"
    opened = services.keyring.open(tenant.id, row.id, row.key_id, row.wrapped_key, row.content).decode()
    assert opened.endswith(link)


def test_a_straggler_under_the_old_key_is_rewrapped_before_retirement(
    services: Services, tenant: TenantFixture
) -> None:
    """A straggler sealed under the old key after the rotation is rewrapped, not orphaned."""
    [old_key] = _key_ids(services, tenant.id)
    rotation = services.key_rotation.rotate(tenant.id)
    # A process whose cache still named the old key seals one more text under it.
    services.texting.add_sender(tenant.id, "+14155550100", "test")
    services.texting.put_contact(
        tenant.id, "+14155550177", time_zone=noon_zone(), address=None,
        notice="email", consents={"code": True}, actor="test",
    )  # fmt: skip
    services.keyring._active[tenant.id] = (float("inf"), old_key)
    sent = services.texting.queue(
        TextRequest(tenant.id, "+14155550177", Template.CODE, "Clinic", code="123456")
    )
    with services.engine.connect() as conn:
        assert (
            conn.execute(sa.select(sms_texts.c.key_id).where(sms_texts.c.id == sent.sms_id)).scalar()
            == old_key
        )
    retirement = services.key_rotation.retire(tenant.id)
    assert retirement.rewrapped == 1 and retirement.retired == [old_key]
    with services.engine.connect() as conn:
        row = conn.execute(sa.select(sms_texts).where(sms_texts.c.id == sent.sms_id)).one()
    assert row.key_id == rotation.key_id
    assert services.keyring.open(tenant.id, row.id, row.key_id, row.wrapped_key, row.content).startswith(
        b"123456"
    )
