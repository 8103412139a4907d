"""Break-glass emergency access and the owners' alerts, over real HTTP on SQLite and PostgreSQL:
only people an owner marked may take it, only with a written reason, for a bounded time; the
owners are mailed through the queue; every page opened under it is audited; it never opens
owner or sign-in settings; it ends by itself or by an owner.  A lockout mails the owners too."""

import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, csrf, enrol
from tests.integration.console.test_console_passkeys import password_step

from sealmail.app import Services
from sealmail.store.tables import audit_log, messages, recipients


def alerts(services: Services, tenant_id: str) -> list[tuple[str, list[str]]]:
    """Queued console alerts: (recipient, tags)."""
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(recipients.c.address, messages.c.tags)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(messages.c.tenant_id == tenant_id)
        ).all()
    return [(r.address, list(r.tags)) for r in rows if "console-alert" in r.tags]


def audit(services: Services, action: str) -> list[dict[str, object]]:
    with services.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.target, audit_log.c.details).where(
                    audit_log.c.action == action
                )
            )
        ]


def test_break_glass_is_marked_reasoned_alerted_audited_bounded_and_ends(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    user_id, token = console.users.invite(tenant.id, "nurse@clinic.example", "Nurse", "sender", actor="test")
    nurse = enrol(console, token, "nurse@clinic.example")
    page = nurse.http.get("/console/emergency")
    assert "has not allowed you" in page.text
    form = {"csrf": csrf(page), "reason": "patient care cannot wait", "minutes": "60"}
    assert nurse.http.post("/console/emergency", data=form).status_code == 403  # not marked by an owner
    assert nurse.http.get("/console/audit").status_code == 403

    users_page = owner.http.get("/console/users")
    mark = {"csrf": csrf(users_page), "eligible": "on"}
    assert owner.http.post(f"/console/users/{user_id}/break-glass", data=mark).status_code == 303
    page = nurse.http.get("/console/emergency")
    token = csrf(page)
    for bad in ({"reason": "x", "minutes": "60"}, {"reason": "the owner is unreachable", "minutes": "9999"}):
        assert nurse.http.post("/console/emergency", data={"csrf": token, **bad}).status_code == 400
    why = "Dr. Lee is unreachable; a patient's results bounced"
    taken = nurse.http.post("/console/emergency", data={"csrf": token, "reason": why, "minutes": "15"})
    assert taken.status_code == 303

    # The owners hear at once, through the product's own queue.
    assert alerts(services, tenant.id) == [("owner@clinic.example", ["console-alert"])]
    granted = audit(services, "emergency_access:granted")[-1]
    assert granted["actor"] == f"user:{user_id}" and why in str(granted["details"])
    # Wider pages open, each visit on the record; owner and sign-in settings stay shut.
    audit_page = nurse.http.get("/console/audit")
    assert audit_page.status_code == 200 and 'id="emergency-banner"' in audit_page.text
    for lasting in ("/console/sso", "/console/users", "/console/keys"):
        assert nurse.http.get(lasting).status_code == 403, lasting  # nothing that outlives the grant
    # No self-promotion: owners are never granted by an emergency.
    promote = {"csrf": csrf(audit_page), "role": "owner"}
    assert nurse.http.post(f"/console/users/{user_id}/role", data=promote).status_code == 403
    used = [a["details"] for a in audit(services, "emergency_access:used")]
    grant_id = granted["details"]["grant"]  # type: ignore[index]
    assert {"grant": grant_id, "method": "GET", "path": "/console/audit"} in used

    # It ends by itself: fifteen minutes later the audit log is shut again.
    console.clock.advance(minutes=14)
    assert nurse.http.get("/console/audit").status_code == 200
    assert owner.http.get("/console/users").status_code == 200  # the owner stays active
    console.clock.advance(minutes=2)
    assert nurse.http.get("/console/audit").status_code == 403

    # Taken again, then ended by an owner from the Users page.
    page = nurse.http.get("/console/emergency")
    again = {"csrf": csrf(page), "reason": "second emergency, still nobody answers", "minutes": "60"}
    assert nurse.http.post("/console/emergency", data=again).status_code == 303
    users_page = owner.http.get("/console/users")
    assert "End emergency access" in users_page.text
    ended = owner.http.post(f"/console/users/{user_id}/emergency/end", data={"csrf": csrf(users_page)})
    assert ended.status_code == 303
    assert nurse.http.get("/console/audit").status_code == 403
    owner_id = next(u.id for u in console.users.list_users(tenant.id) if u.email == owner.email)
    assert audit(services, "emergency_access:ended")[-1]["actor"] == f"user:{owner_id}"


def test_a_lockout_mails_every_owner(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    _, token = console.users.invite(tenant.id, "second@clinic.example", "", "owner", actor="test")
    enrol(console, token, "second@clinic.example")
    c, page = password_step(console, owner.email)
    for _ in range(console.users.policy.lockout_failures):
        page = c.get("/console/signin/code")
        if page.status_code != 200:
            break
        c.post("/console/signin/code", data={"csrf": csrf(page), "code": "000000"})
    assert audit(services, "user:locked")
    told = sorted(a for a, _ in alerts(services, tenant.id))
    assert told == ["owner@clinic.example", "second@clinic.example"]
