"""Recall and portal expiry from the console over real HTTP on SQLite and PostgreSQL: a sender
acts on their own messages only, an administrator on any, support only reads the trail, and
every change lands in the audit log with the console user."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, Person, csrf, person
from tests.integration.console.test_console_compose import compose

from sealmail.app import Services
from sealmail.evidence.working_hours import WorkingHours
from sealmail.store.tables import audit_log, recipients
from sealmail.users.roles import Role


def sent(who: Person) -> str:
    r = compose(who, to="pat@example.net, kin@example.org")
    assert r.status_code == 303, r.text
    return str(r.headers["location"].rsplit("/", 1)[1])


def post(who: Person, path: str, **fields: str):  # type: ignore[no-untyped-def]
    token = csrf(who.http.get("/console/passkeys"))  # a page every role loads
    return who.http.post(path, data={"csrf": token, **fields})


def audited(services: Services, message_id: str) -> list[tuple[str, str]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.actor)
            .where(audit_log.c.target == message_id)
            .order_by(audit_log.c.seq)
        ).all()
    return [(str(a), str(b)) for a, b in rows]


def statuses(services: Services, message_id: str) -> set[str]:
    with services.engine.connect() as conn:
        return set(
            conn.execute(
                sa.select(recipients.c.status).where(recipients.c.message_id == message_id)
            ).scalars()
        )


def test_a_sender_recalls_their_own_message_and_the_recall_is_audited_with_them(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    bob = person(console, tenant.id, "bob@clinic.example", Role.SENDER)
    mid = sent(alice)
    page = alice.http.get(f"/console/sent/{mid}")
    assert "Recall this message" in page.text and 'id="portal-state">open<' in page.text
    # Another sender neither recalls it nor learns it exists.
    assert post(bob, f"/console/messages/{mid}/recall").status_code == 404
    assert statuses(services, mid) == {"queued"}

    done = post(alice, f"/console/messages/{mid}/recall", back="sent")
    assert done.status_code == 303 and done.headers["location"] == f"/console/sent/{mid}"
    assert statuses(services, mid) == {"cancelled"}
    page = alice.http.get(f"/console/sent/{mid}")
    assert 'id="portal-state">recalled' in page.text and "Recall this message" not in page.text
    assert 'id="message-status">cancelled<' in page.text
    assert services.portal_lifecycle.describe(tenant.id, mid).recalled_at is not None
    trail = audited(services, mid)
    alice_id = next(a for action, a in trail if action == "message:accepted")
    assert alice_id.startswith("user:")
    assert ("message:cancelled", alice_id) in trail and ("portal:recalled", alice_id) in trail


def test_expiry_is_set_by_the_owner_or_an_administrator_and_refused_in_the_past(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    admin = person(console, tenant.id, "admin@clinic.example", Role.ADMINISTRATOR)
    support = person(console, tenant.id, "support@clinic.example", Role.SUPPORT)
    mid = sent(alice)
    soon = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    r = post(alice, f"/console/messages/{mid}/expiry", expires=soon.strftime("%Y-%m-%dT%H:%M"), back="sent")
    assert r.status_code == 303, r.text
    assert services.portal_lifecycle.describe(tenant.id, mid).expires_at == soon
    past = post(alice, f"/console/messages/{mid}/expiry", expires="2020-01-01T00:00")
    assert past.status_code == 422 and "must be in the future" in past.text
    junk = post(alice, f"/console/messages/{mid}/expiry", expires="<script>")
    assert junk.status_code == 422
    assert services.portal_lifecycle.describe(tenant.id, mid).expires_at == soon

    # Support reads the trail but has no recall or expiry; the administrator has both.
    seen = support.http.get(f"/console/messages/{mid}")
    assert seen.status_code == 200 and "Recall this message" not in seen.text
    assert soon.strftime("%Y-%m-%d %H:%M UTC") in seen.text
    assert post(support, f"/console/messages/{mid}/recall").status_code == 403
    shorter = soon - timedelta(days=1)
    r = post(admin, f"/console/messages/{mid}/expiry", expires=shorter.strftime("%Y-%m-%dT%H:%M"))
    assert r.status_code == 303 and r.headers["location"] == f"/console/messages/{mid}"
    assert services.portal_lifecycle.describe(tenant.id, mid).expires_at == shorter
    assert post(admin, f"/console/messages/{mid}/recall").status_code == 303
    changes = [a for action, a in audited(services, mid) if action == "portal:settings_changed"]
    assert len(changes) == 2 and changes[0] != changes[1]


def test_expiry_is_typed_and_shown_in_the_tenants_time_zone_or_a_named_one(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    mid = sent(alice)
    year = datetime.now(UTC).year + 1
    services.evidence.activity_review.set_working_hours(
        tenant.id, WorkingHours("America/New_York", 9, 17, (0, 1, 2, 3, 4)), "test"
    )
    page = alice.http.get(f"/console/sent/{mid}").text
    assert 'name="zone" type="text" value="America/New_York"' in page  # the tenant's zone, prefilled
    # 09:00 on 1 July in New York is 13:00 UTC (daylight time); in January it is 14:00.
    assert post(alice, f"/console/messages/{mid}/expiry", expires=f"{year}-07-01T09:00").status_code == 303
    assert services.portal_lifecycle.describe(tenant.id, mid).expires_at == datetime(
        year, 7, 1, 13, tzinfo=UTC
    )
    shown = alice.http.get(f"/console/sent/{mid}").text
    assert f"{year}-07-01 09:00 America/New_York ({year}-07-01 13:00 UTC)" in shown
    r = post(alice, f"/console/messages/{mid}/expiry", expires=f"{year}-01-10T09:00", zone="Asia/Tokyo")
    assert r.status_code == 303
    assert services.portal_lifecycle.describe(tenant.id, mid).expires_at == datetime(
        year, 1, 10, 0, tzinfo=UTC
    )
    for zone in ("Mars/Olympus", "../../etc/passwd", "\u202eUTC"):
        bad = post(alice, f"/console/messages/{mid}/expiry", expires=f"{year}-02-01T09:00", zone=zone)
        assert bad.status_code == 422 and "IANA time zone" in bad.text
    assert services.portal_lifecycle.describe(tenant.id, mid).expires_at == datetime(
        year, 1, 10, 0, tzinfo=UTC
    )


def test_a_message_of_another_tenant_is_absent(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    other_tenant = make_tenant(services, "Other", "other.example")
    admin = person(console, tenant.id, "admin@clinic.example", Role.ADMINISTRATOR)
    stranger = person(console, other_tenant.id, "s@other.example", Role.SENDER)
    mid = sent(stranger)
    assert admin.http.get(f"/console/messages/{mid}").status_code == 404
    assert post(admin, f"/console/messages/{mid}/recall").status_code == 404
    assert statuses(services, mid) == {"queued"}
