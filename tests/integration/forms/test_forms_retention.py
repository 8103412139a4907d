"""Form submissions follow the tenant's content retention: past it their sealed answers are
crypto-shredded, except under a legal hold (on the tenant, the submission or the message
that delivered it), on SQLite and PostgreSQL.  The purge runs "later" by a future ``now``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture

from sealmail import audit
from sealmail.app import Services, build_evidence
from sealmail.audit import AuditAction
from sealmail.errors import NotFound
from sealmail.evidence.retention import FLOOR_DAYS, RetentionPolicy
from sealmail.evidence.retention_report import retention_rows
from sealmail.forms.tables import form_submissions as fs
from sealmail.intake.api.app import create_api
from sealmail.store.tables import audit_log

TOKEN = re.compile(r'name="_token" value="([^"]+)"')


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_api(services), raise_server_exceptions=False) as c:
        yield c


def submit(client: TestClient, form_id: str, answer: str) -> None:
    hit = TOKEN.search(client.get(f"/f/{form_id}").text)
    assert hit
    r = client.post(f"/f/{form_id}", data={"_token": hit.group(1), "reason": answer}, follow_redirects=False)
    assert r.status_code == 303, r.text


def make_form(client: TestClient, tenant: TenantFixture) -> str:
    body = {
        "title": "Intake", "recipients": ["intake@clinic.example"], "sender": "forms@clinic.example",
        "min_fill_seconds": 0,
        "fields": [{"name": "reason", "label": "Reason", "type": "textarea", "required": True}],
    }  # fmt: skip
    r = client.post("/v1/forms", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_submissions_are_shredded_after_the_content_period_unless_held(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    form_id = make_form(client, tenant)
    for answer in ("first", "second", "third"):
        submit(client, form_id, answer)
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(fs.c.id, fs.c.message_id, fs.c.status).order_by(fs.c.id)).all()
    assert [row.status for row in rows] == ["delivered"] * 3
    (a, _, _), (b, b_message, _), (c, _, _) = rows
    retention = build_evidence(services).retention
    retention.set_policy(tenant.id, RetentionPolicy(30, FLOOR_DAYS, FLOOR_DAYS), "officer")
    by_submission = retention.place_hold(tenant.id, "message", a, "litigation", "officer")
    retention.place_hold(tenant.id, "message", b_message, "subpoena", "officer")

    assert retention.purge(tenant.id, "test", datetime.now(UTC) + timedelta(days=1)).forms_shredded == 0
    result = retention.purge(tenant.id, "test", datetime.now(UTC) + timedelta(days=31))
    assert (result.forms_shredded, result.forms_held) == (1, 2)
    subs = services.form_submissions
    with pytest.raises(NotFound, match="destroyed"):
        subs.read(tenant.principal, form_id, c)
    assert subs.read(tenant.principal, form_id, a)["document"]["answers"]["reason"] == "first"
    assert subs.read(tenant.principal, form_id, b)["document"]["answers"]["reason"] == "second"
    assert subs.deliver(tenant.id, c) is None  # nothing left to deliver again

    retention.release_hold(tenant.id, by_submission.id, "officer")
    later = datetime.now(UTC) + timedelta(days=32)
    assert retention.purge(tenant.id, "test", later).forms_shredded == 1
    assert retention.purge(tenant.id, "test", later).forms_shredded == 0
    with services.engine.connect() as conn:
        keys = dict(conn.execute(sa.select(fs.c.id, fs.c.wrapped_key)).all())
        purged = set(
            conn.execute(
                sa.select(audit_log.c.target).where(audit_log.c.action == str(AuditAction.RETENTION_PURGED))
            ).scalars()
        )
    assert keys[a] == b"" and keys[c] == b"" and keys[b] != b""
    assert {a, c} <= purged and b not in purged
    assert audit.verify(services.engine).ok
    report = retention_rows(services.engine, tenant.id)
    assert ("content", "form_submissions_shredded", "2") in [r[:3] for r in report]


def test_a_tenant_hold_keeps_every_submission(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    submit(client, make_form(client, tenant), "kept")
    retention = build_evidence(services).retention
    retention.set_policy(tenant.id, RetentionPolicy(30, FLOOR_DAYS, FLOOR_DAYS), "officer")
    retention.place_hold(tenant.id, "tenant", "", "audit in progress", "officer")
    result = retention.purge(tenant.id, "test", datetime.now(UTC) + timedelta(days=31))
    assert (result.forms_shredded, result.forms_held) == (0, 1)
