"""The console over real HTTP on SQLite and PostgreSQL: enrolment, sign-in with TOTP, lockout,
idle logoff, role denials, tenant isolation, CSRF and disabling a user."""

import pyotp
import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import (
    PASSWORD,
    Console,
    Person,
    csrf,
    enrol,
    sign_in,
)

from sealmail.app import Services
from sealmail.store.tables import audit_log
from sealmail.users.tables import console_sessions

OWNER = "owner@clinic.example"


def actions(services: Services, tenant_id: str) -> list[str]:
    with services.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log.c.action)
                .where(audit_log.c.tenant_id == tenant_id)
                .order_by(audit_log.c.seq)
            ).scalars()
        )


def invite(console: Console, who: Person, email: str, role: str) -> Person:
    """The owner invites through the users page; the invitee enrols with the link shown."""
    page = who.http.get("/console/users")
    r = who.http.post("/console/users", data={"csrf": csrf(page), "email": email, "name": "", "role": role})
    assert r.status_code == 200, r.text
    link = r.text.split('id="invite-link">', 1)[1].split("<", 1)[0]
    return enrol(console, link.rsplit("/", 1)[1], email)


@pytest.mark.hipaa("164.312(d)")
def test_owner_link_enrols_totp_then_password_and_code_sign_in_reach_the_dashboard(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    assert owner.http.get("/console/").status_code == 200  # signed in right after enrolment
    code = pyotp.TOTP(owner.secret).at(console.clock())
    c = sign_in(console, OWNER, PASSWORD, code)
    page = c.get("/console/")
    assert page.status_code == 200 and "<h1>Dashboard</h1>" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    assert {"user:invited", "user:enrolled", "user:signed_in"} <= set(actions(services, tenant.id))
    # The link worked once.
    assert console.client().get(f"/console/welcome/{'x' * 43}").status_code == 404


def test_a_used_link_does_not_open_again(console: Console, tenant: TenantFixture) -> None:
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    assert token
    enrol(console, token, OWNER)
    assert console.client().get(f"/console/welcome/{token}").status_code == 404
    assert console.users.owner_link(tenant.id, OWNER, actor="test") is None


@pytest.mark.hipaa("164.312(d)")
def test_password_alone_never_signs_in_and_a_replayed_code_is_refused(
    console: Console, owner: Person
) -> None:
    code = pyotp.TOTP(owner.secret).at(console.clock())
    c = sign_in(console, OWNER, PASSWORD, code)
    assert c.get("/console/").status_code == 200
    # Same step, same code: refused (RFC 6238 §5.2), so no session.
    again = sign_in(console, OWNER, PASSWORD, code)
    assert again.get("/console/").status_code == 303
    half = console.client()
    page = half.get("/console/signin")
    half.post("/console/signin", data={"csrf": csrf(page), "email": OWNER, "password": PASSWORD})
    assert half.get("/console/").headers["location"].startswith("/console/signin")


def test_common_passwords_are_refused_at_enrolment(console: Console, tenant: TenantFixture) -> None:
    token = console.users.owner_link(tenant.id, OWNER, actor="test")
    c = console.client()
    c.get(f"/console/welcome/{token}")
    page = c.get("/console/enroll")
    secret = page.text.split('id="totp-secret"', 1)[1].split(">", 1)[1].split("<", 1)[0].replace(" ", "")
    code = pyotp.TOTP(secret).at(console.clock())
    r = c.post("/console/enroll", data={"csrf": csrf(page), "password": "Password123", "code": code})
    assert r.status_code == 400 and "common or breached" in r.text


@pytest.mark.hipaa("164.312(d)")
def test_repeated_failures_lock_the_account_even_for_the_right_password(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    for _ in range(5):
        sign_in(console, OWNER, "not the password", "000000")
    code = pyotp.TOTP(owner.secret).at(console.clock())
    locked = sign_in(console, OWNER, PASSWORD, code)
    assert locked.get("/console/").status_code == 303
    page = console.client()
    form = page.get("/console/signin")
    r = page.post("/console/signin", data={"csrf": csrf(form), "email": OWNER, "password": PASSWORD})
    assert r.headers["location"] == "/console/signin?error=locked"
    assert "user:locked" in actions(services, tenant.id)
    # After the lockout period the right factors work again.
    console.clock.advance(minutes=16)
    code = pyotp.TOTP(owner.secret).at(console.clock())
    assert sign_in(console, OWNER, PASSWORD, code).get("/console/").status_code == 200


def test_idle_sessions_end_after_the_tenants_limit(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    console.clock.advance(minutes=14)
    assert owner.http.get("/console/").status_code == 200  # activity resets the idle timer
    console.clock.advance(minutes=15)
    r = owner.http.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/signin?error=idle"
    # Server-side: the session row is ended, not merely forgotten by the browser.
    with services.engine.connect() as conn:
        live = sa.select(sa.func.count()).where(
            console_sessions.c.ended_at.is_(None), console_sessions.c.stage == "active"
        )
        assert conn.execute(live).scalar_one() == 0
    services.tenancy.update_settings(tenant.id, {"console_idle_minutes": 30}, actor="test")
    code = pyotp.TOTP(owner.secret).at(console.clock())
    c = sign_in(console, OWNER, PASSWORD, code)
    console.clock.advance(minutes=20)
    assert c.get("/console/").status_code == 200


@pytest.mark.hipaa("164.312(a)(1)")
def test_roles_are_refused_pages_they_lack(console: Console, owner: Person) -> None:
    support = invite(console, owner, "help@clinic.example", "support")
    assert support.http.get("/console/messages").status_code == 200
    assert support.http.get("/console/audit").status_code == 403
    assert support.http.get("/console/users").status_code == 403
    page = support.http.get("/console/messages")
    r = support.http.post(
        "/console/users", data={"csrf": csrf(page), "email": "x@clinic.example", "role": "owner"}
    )
    assert r.status_code == 403
    compliance = invite(console, owner, "co@clinic.example", "compliance")
    assert compliance.http.get("/console/audit").status_code == 200
    assert compliance.http.get("/console/messages").status_code == 403
    auditor = invite(console, owner, "ext@audit.example", "auditor")
    assert auditor.http.get("/console/").headers["location"] == "/console/audit"
    assert auditor.http.get("/console/").status_code == 303
    admin = invite(console, owner, "admin@clinic.example", "administrator")
    page = admin.http.get("/console/users")
    r = admin.http.post(
        "/console/users", data={"csrf": csrf(page), "email": "o2@clinic.example", "role": "owner"}
    )
    assert r.status_code == 403  # only owners make owners


def test_forms_without_our_csrf_token_or_from_another_origin_are_refused(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    page = owner.http.get("/console/users")
    data = {"email": "new@clinic.example", "name": "", "role": "sender"}
    assert owner.http.post("/console/users", data=data).status_code == 403
    assert owner.http.post("/console/users", data={**data, "csrf": "0" * 64}).status_code == 403
    foreign = {"Origin": "https://evil.example"}
    assert (
        owner.http.post("/console/users", data={**data, "csrf": csrf(page)}, headers=foreign).status_code
        == 403
    )
    assert "new@clinic.example" not in owner.http.get("/console/users").text
    assert owner.http.post("/console/users", data={**data, "csrf": csrf(page)}).status_code == 200


@pytest.mark.hipaa("164.312(a)(1)")
def test_disabling_a_user_ends_their_sessions_at_once(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    support = invite(console, owner, "help@clinic.example", "support")
    assert support.http.get("/console/messages").status_code == 200
    user_id = next(u.id for u in console.users.list_users(tenant.id) if u.email == "help@clinic.example")
    page = owner.http.get("/console/users")
    assert owner.http.post(f"/console/users/{user_id}/disable", data={"csrf": csrf(page)}).status_code == 303
    assert support.http.get("/console/messages").status_code == 303
    code = pyotp.TOTP(support.secret).at(console.clock())
    assert sign_in(console, "help@clinic.example", PASSWORD, code).get("/console/").status_code == 303
    assert "user:disabled" in actions(services, tenant.id)


def test_the_trail_shows_delivery_facts_and_no_content_only_within_the_tenant(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    api = console.client()
    body = {"from": f"Clinic <noreply@{tenant.domain}>", "to": ["patient@example.net"],
            "subject": "Biopsy results ready", "text": "Confidential", "stream": "phi"}  # fmt: skip
    r = api.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {tenant.api_key}"})
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    page = owner.http.get("/console/messages", params={"q": "patient@example.net"})
    assert page.status_code == 200
    assert message_id in page.text and "patient@example.net" in page.text and "queued" in page.text
    assert "Biopsy" not in page.text and "Confidential" not in page.text
    assert owner.http.get("/console/messages", params={"q": message_id}).text.count(message_id) >= 1
    board = owner.http.get("/console/")
    assert "phi" in board.text
    # Another tenant's owner finds nothing and cannot touch this tenant's users.
    other = make_tenant(services, "Other Clinic", "other.example")
    token = console.users.owner_link(other.id, "boss@other.example", actor="test")
    assert token
    stranger = enrol(console, token, "boss@other.example")
    found = stranger.http.get("/console/messages", params={"q": "patient@example.net"})
    assert found.status_code == 200 and message_id not in found.text
    owner_id = next(u.id for u in console.users.list_users(tenant.id))
    page = stranger.http.get("/console/users")
    assert (
        stranger.http.post(f"/console/users/{owner_id}/disable", data={"csrf": csrf(page)}).status_code == 404
    )
    assert OWNER not in page.text


def test_api_keys_made_in_the_console_carry_their_creator_and_die_with_them(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    admin = invite(console, owner, "admin@clinic.example", "owner")  # ``read`` needs content reads
    page = admin.http.get("/console/keys")
    made = admin.http.post("/console/keys", data={"csrf": csrf(page), "name": "EHR", "scope_read": "on"})
    assert made.status_code == 200
    secret = made.text.split('id="new-key">', 1)[1].split("<", 1)[0]
    bearer = {"Authorization": f"Bearer {secret}"}
    api = console.client()
    assert api.get("/v1/messages", headers=bearer).status_code == 200
    assert "admin@clinic.example" in owner.http.get("/console/keys").text  # the creator is shown
    assert api.post("/v1/messages", json={}, headers=bearer).status_code == 403  # read scope only
    admin_id = next(u.id for u in console.users.list_users(tenant.id) if u.email == "admin@clinic.example")
    users_page = owner.http.get("/console/users")
    owner.http.post(f"/console/users/{admin_id}/disable", data={"csrf": csrf(users_page)})
    # Revoked in the disabling transaction, and this process's verification cache dropped after
    # it: refused at once, not after tenancy.service.CACHE_SECONDS (other processes: that bound).
    assert api.get("/v1/messages", headers=bearer).status_code == 401
    assert "api_key:revoked" in actions(services, tenant.id)


def test_activity_never_extends_a_session_past_its_absolute_lifetime(console: Console, owner: Person) -> None:
    code = pyotp.TOTP(owner.secret).at(console.clock())
    c = sign_in(console, OWNER, PASSWORD, code)
    lifetime = console.users.policy.lifetime
    started = console.clock()
    while console.clock() - started < lifetime - console.users.policy.idle:
        assert c.get("/console/").status_code == 200
        console.clock.advance(minutes=14)
    console.clock.t = started + lifetime
    r = c.get("/console/")
    assert r.status_code == 303 and r.headers["location"] == "/console/signin?error=expired"
