"""The activity review in the console (164.308(a)(1)(ii)(D)): the compliance officer reads the
month's queue, sets the tenant's working hours and signs the month off (CSRF, audited with the
person's id, once); an auditor reads but cannot sign; sign-ins outside the tenant's own hours
and one person's large content reads are queued."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, csrf, invite_as

from sealmail import audit
from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.errors import InvalidRequest
from sealmail.evidence.activity_review import ActivityReview
from sealmail.evidence.working_hours import ReviewSettings, WorkingHours
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

pytestmark = pytest.mark.hipaa("164.308(a)(1)(ii)(D)")
MONTH = datetime.now(UTC).strftime("%Y-%m")


def _actors(services: Services, action: AuditAction) -> list[str]:
    with services.engine.connect() as conn:
        query = (
            sa.select(audit_log.c.actor).where(audit_log.c.action == str(action)).order_by(audit_log.c.seq)
        )
        return list(conn.execute(query).scalars())


def test_officer_sets_hours_and_signs_off_once(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    with services.engine.begin() as conn:
        audit.append(conn, action=AuditAction.EMERGENCY_ACCESS_USED, actor="user:ann", tenant_id=tenant.id)
        audit.append(conn, action=AuditAction.DECISION_RECORDED, actor="user:ann", tenant_id=tenant.id)
    officer = invite_as(console, tenant.id, Role.COMPLIANCE)
    page = officer.http.get("/console/evidence/review")
    assert page.status_code == 200 and "Break-glass grants and uses: <strong>1</strong>" in page.text
    assert "Protective settings weakened: <strong>1</strong>" in page.text
    token = csrf(page)

    bad = officer.http.post(
        "/console/evidence/review/hours",
        data={
            "csrf": token,
            "month": MONTH,
            "time_zone": "Mars/Olympus",
            "start": "8",
            "end": "17",
            "weekdays": "0",
        },
    )
    assert bad.status_code in (400, 422) and "IANA" in bad.text
    saved = officer.http.post(
        "/console/evidence/review/hours",
        data={"csrf": token, "month": MONTH, "time_zone": "Pacific/Honolulu", "start": "8", "end": "17",
              "weekdays": ["0", "1", "2"], "large_reads": "12"},
    )  # fmt: skip
    assert saved.status_code == 303, saved.text
    assert services.evidence.activity_review.review_settings(tenant.id) == ReviewSettings(
        WorkingHours("Pacific/Honolulu", 8, 17, (0, 1, 2)), 12
    )
    zero = officer.http.post(
        "/console/evidence/review/hours",
        data={"csrf": token, "month": MONTH, "time_zone": "UTC", "start": "8", "end": "17",
              "weekdays": "0", "large_reads": "0"},
    )  # fmt: skip
    assert zero.status_code == 400 and "large-read threshold" in zero.text
    assert _actors(services, AuditAction.WORKING_HOURS_SET)[-1].startswith("user:")

    forged = officer.http.post(
        "/console/evidence/review/sign-off", data={"csrf": "x", "month": MONTH, "note": "ok"}
    )
    assert forged.status_code == 403
    empty = officer.http.post(
        "/console/evidence/review/sign-off", data={"csrf": token, "month": MONTH, "note": " "}
    )
    assert empty.status_code in (400, 422)
    signed = officer.http.post(
        "/console/evidence/review/sign-off",
        data={"csrf": token, "month": MONTH, "note": "Break-glass was the ED case."},
    )
    assert signed.status_code == 303, signed.text
    again = officer.http.post(
        "/console/evidence/review/sign-off", data={"csrf": token, "month": MONTH, "note": "2"}
    )
    assert again.status_code == 409
    shown = officer.http.get("/console/evidence/review", params={"month": MONTH})
    assert 'id="sign-off"' in shown.text and "Break-glass was the ED case." in shown.text
    assert "Pacific/Honolulu" in shown.text
    [actor] = _actors(services, AuditAction.ACTIVITY_REVIEW_SIGNED)
    assert actor.startswith("user:")
    assert officer.http.get("/console/evidence/review", params={"month": "2026-13"}).status_code in (400, 422)


def test_auditor_reads_the_queue_but_cannot_sign_or_set_hours(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    auditor = invite_as(console, tenant.id, Role.AUDITOR)
    page = auditor.http.get("/console/evidence/review")
    assert page.status_code == 200 and "Queue for" in page.text
    assert (
        'action="/console/evidence/review/sign-off"' not in page.text
        and "Save working hours" not in page.text
    )
    token = csrf(page)
    denied = auditor.http.post(
        "/console/evidence/review/sign-off", data={"csrf": token, "month": MONTH, "note": "x"}
    )
    assert denied.status_code == 403
    hours = auditor.http.post(
        "/console/evidence/review/hours",
        data={"csrf": token, "month": MONTH, "time_zone": "UTC", "start": "0", "end": "24", "weekdays": "0"},
    )
    assert hours.status_code == 403
    assert _actors(services, AuditAction.ACTIVITY_REVIEW_SIGNED) == []


def test_off_hours_follow_the_tenant_and_large_reads_are_queued(
    services: Services, tenant: TenantFixture
) -> None:
    review = ActivityReview(services.engine, services.tenancy.update_settings)
    review.set_review_settings(tenant.id, ReviewSettings(large_reads=3), "test")
    today = datetime.now(UTC).weekday()
    with services.engine.begin() as conn:
        audit.append(conn, action=AuditAction.USER_SIGNED_IN, actor="user:bob", tenant_id=tenant.id)
        for _ in range(3):
            audit.append(conn, action=AuditAction.MESSAGE_CONTENT_READ, actor="user:eve", tenant_id=tenant.id)
        audit.append(conn, action=AuditAction.MESSAGE_CONTENT_READ, actor="user:bob", tenant_id=tenant.id)
    review.set_working_hours(tenant.id, WorkingHours("UTC", 0, 24, (today,)), "test")
    assert review.review_settings(tenant.id).large_reads == 3  # new hours keep the threshold
    counts = review.queue(tenant.id, MONTH).counts
    assert "off_hours_sign_in" not in counts  # every hour of today is a working hour
    assert counts["large_content_read"] == 1 and counts["content_read"] == 4
    [large] = [i for i in review.queue(tenant.id, MONTH).items if i.category == "large_content_read"]
    assert large.actor == "user:eve" and (large.target or "").startswith("3 content reads on ")
    review.set_working_hours(tenant.id, WorkingHours("UTC", 0, 24, ((today + 1) % 7,)), "test")
    assert review.queue(tenant.id, MONTH).counts["off_hours_sign_in"] == 1


def test_working_hours_are_local_to_the_tenant() -> None:
    ny = WorkingHours("America/New_York", 9, 17, (0, 1, 2, 3, 4))
    assert ny.outside(datetime(2026, 12, 1, 13, 0, tzinfo=UTC))  # Tue 08:00 in New York
    assert not ny.outside(datetime(2026, 12, 1, 15, 0, tzinfo=UTC))  # Tue 10:00
    assert ny.outside(datetime(2026, 12, 5, 15, 0, tzinfo=UTC))  # Saturday
    with pytest.raises(InvalidRequest, match="start before end"):
        WorkingHours("UTC", 18, 9).check()
