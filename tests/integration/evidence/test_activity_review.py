"""The monthly activity review (164.308(a)(1)(ii)(D)): the queue comes from the audit log,
per tenant; the compliance officer's sign-off is once per month, audited, and in the pack."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant

from sealmail import audit
from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.evidence.activity_review import CATEGORY_OF, month_bounds, off_hours
from sealmail.intake.api.app import create_api
from sealmail.store.tables import audit_log

pytestmark = pytest.mark.hipaa("164.308(a)(1)(ii)(D)")

REVIEWED = (
    (AuditAction.USER_SIGNIN_FAILED, "failed_sign_in"),
    (AuditAction.MESSAGE_CONTENT_READ, "content_read"),
    (AuditAction.REPORT_EXPORTED, "export"),
    (AuditAction.EMERGENCY_ACCESS_USED, "break_glass"),
    (AuditAction.MESSAGE_RELEASED, "dlp_override"),
    (AuditAction.DECISION_RECORDED, "weakened_setting"),
)


def _record(services: Services, tenant_id: str, actions: list[AuditAction]) -> None:
    with services.engine.begin() as conn:
        for action in actions:
            audit.append(conn, action=action, actor="user:ann", tenant_id=tenant_id, target="t1")


def test_queue_sign_off_audit_and_pack(services: Services, tenant: TenantFixture) -> None:
    other = make_tenant(services, "Other", "other.example")
    _record(services, tenant.id, [a for a, _ in REVIEWED] + [AuditAction.RETENTION_POLICY_SET])
    _record(services, other.id, [AuditAction.MESSAGE_CONTENT_READ] * 3)
    month = datetime.now(UTC).strftime("%Y-%m")
    auth = {"Authorization": f"Bearer {tenant.api_key}"}
    _, reader_key = services.tenancy.create_api_key(tenant.id, "reader", ["read"], actor="test")
    with TestClient(create_api(services)) as http:
        queue = http.get(f"/v1/evidence/activity-review/{month}", headers=auth).json()
        assert {c: n for c, n in queue["counts"].items() if c != "off_hours_sign_in"} == {
            c: 1 for _, c in REVIEWED
        }
        assert queue["sign_off"] is None and all(i["target"] == "t1" for i in queue["items"])

        bad = http.get("/v1/evidence/activity-review/2026-13", headers=auth)
        assert bad.status_code == 400 and bad.headers["content-type"].startswith("application/problem+json")
        future = http.post("/v1/evidence/activity-review/2999-01/sign-off", json={"note": "x"}, headers=auth)
        assert future.status_code == 400
        denied = http.post(
            f"/v1/evidence/activity-review/{month}/sign-off",
            json={"note": "ok"},
            headers={"Authorization": f"Bearer {reader_key}"},
        )
        assert denied.status_code == 403
        empty = http.post(f"/v1/evidence/activity-review/{month}/sign-off", json={"note": ""}, headers=auth)
        assert empty.status_code == 422

        note = "Break-glass use by ann was the 2am ED case; release approved by DLP lead."
        signed = http.post(
            f"/v1/evidence/activity-review/{month}/sign-off", json={"note": note}, headers=auth
        )
        assert signed.status_code == 201, signed.text
        assert signed.json()["items_sha256"] == queue["items_sha256"]
        assert signed.json()["item_count"] == len(queue["items"])
        again = http.post(f"/v1/evidence/activity-review/{month}/sign-off", json={"note": "2"}, headers=auth)
        assert again.status_code == 409
        after = http.get(f"/v1/evidence/activity-review/{month}", headers=auth).json()
        assert after["sign_off"]["note"] == note
        others = http.get(
            f"/v1/evidence/activity-review/{month}", headers={"Authorization": f"Bearer {other.api_key}"}
        ).json()
        assert others["counts"] == {"content_read": 3} and others["sign_off"] is None

        pack = http.get("/v1/evidence/pack", params={"period": month[:4]}, headers=auth)
        assert pack.status_code == 200
        reviews = json.loads(
            zipfile.ZipFile(io.BytesIO(pack.content)).read("registers/activity-reviews.json")
        )
        assert [r["month"] for r in reviews] == [month] and reviews[0]["note"] == note

    with services.engine.connect() as conn:
        entry = conn.execute(
            sa.select(audit_log).where(audit_log.c.action == str(AuditAction.ACTIVITY_REVIEW_SIGNED))
        ).one()
    assert entry.tenant_id == tenant.id and entry.target == month
    assert entry.details["items_sha256"] == queue["items_sha256"] and entry.details["note"] == note


def test_every_workforce_read_or_export_is_reviewed() -> None:
    """A new action that reads or exports content joins a category, or the review misses it.
    The patient's own portal reads and a recipient's download are not workforce activity."""
    outside = {
        AuditAction.PORTAL_VIEWED,
        AuditAction.PORTAL_ATTACHMENT_DOWNLOADED,
        AuditAction.FILE_DOWNLOADED,
    }
    reads = {
        a
        for a in AuditAction
        if a.value.rsplit(":", 1)[1] in ("read", "content_read", "revealed", "exported", "downloaded")
    }
    assert reads - outside, "the pattern still names actions"
    assert {str(a) for a in reads - outside} <= set(CATEGORY_OF)
    assert CATEGORY_OF[str(AuditAction.MKT_AUTHORIZATIONS_READ)] == "content_read"


def test_hours_and_months() -> None:
    assert off_hours(datetime(2026, 12, 2, 3, 0, tzinfo=UTC))  # Wednesday 03:00
    assert not off_hours(datetime(2026, 12, 2, 10, 0, tzinfo=UTC))
    assert off_hours(datetime(2026, 12, 5, 10, 0, tzinfo=UTC))  # Saturday
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert month_bounds("2026-02")[1] == datetime(2026, 3, 1, tzinfo=UTC)
