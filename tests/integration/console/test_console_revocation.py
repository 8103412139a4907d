"""Disabling a person revokes, in the one transaction that disables them, their sessions and
every API key and SMTP credential behind them: made in the console, or through one of their
keys (a key making keys too).  What others made keeps working.  SQLite and PostgreSQL."""

from datetime import timedelta

import pyotp
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import PASSWORD, Console, Person, csrf, enrol, sign_in
from tests.support.waiting import wait_until

from sealmail.app import Services
from sealmail.store.tables import api_keys, audit_log, smtp_credentials


def test_disabling_a_user_revokes_their_keys_the_keys_those_made_and_their_smtp_credentials(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    # An owner: only a role holding every permission puts ``admin`` on a key.
    user_id, token = console.users.invite(tenant.id, "admin@clinic.example", "", "owner", actor="test")
    admin = enrol(console, token, "admin@clinic.example")
    page = admin.http.get("/console/keys")
    made = admin.http.post("/console/keys", data={"csrf": csrf(page), "name": "EHR", "scope_admin": "on"})
    secret = made.text.split('id="new-key">', 1)[1].split("<", 1)[0]
    api = console.client()
    bearer = {"Authorization": f"Bearer {secret}"}
    child = api.post("/v1/api-keys", json={"name": "child", "scopes": ["admin"]}, headers=bearer).json()
    grandchild_cred = api.post(
        "/v1/smtp-credentials", json={}, headers={"Authorization": f"Bearer {child['key']}"}
    ).json()
    cred = api.post("/v1/smtp-credentials", json={}, headers=bearer).json()
    # Someone else's credential: the CLI's, made for the tenant, not by this person.
    _, other_user, other_password = services.tenancy.create_smtp_credential(tenant.id, "cli")
    for c in (cred, grandchild_cred):
        assert services.tenancy.authenticate_smtp(c["username"], c["password"]) is not None
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(api_keys.c.created_by).where(api_keys.c.id == child["id"])).scalar_one()

    users_page = owner.http.get("/console/users")
    r = owner.http.post(f"/console/users/{user_id}/disable", data={"csrf": csrf(users_page)})
    assert r.status_code == 303

    with services.engine.connect() as conn:
        live_keys = conn.execute(
            sa.select(sa.func.count()).where(
                api_keys.c.tenant_id == tenant.id, api_keys.c.revoked_at.is_(None)
            )
        ).scalar_one()
        creds = dict(
            conn.execute(sa.select(smtp_credentials.c.username, smtp_credentials.c.revoked_at)).all()
        )
        disabled = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "user:disabled")
        ).scalar_one()
    # Only the tenant fixture's own key is left; both of the person's credentials are dead.
    assert live_keys == 1
    assert creds[cred["username"]] is not None and creds[grandchild_cred["username"]] is not None
    assert creds[other_user] is None
    assert disabled["api_keys_revoked"] == 2 and disabled["smtp_credentials_revoked"] == 2
    # The verification caches forget within their few seconds (tenancy CACHE_SECONDS).
    wait_until(
        lambda: services.tenancy.authenticate_smtp(cred["username"], cred["password"]) is None,
        15,
        "cred alive",
    )
    assert services.tenancy.authenticate_smtp(other_user, other_password) is not None
    assert api.get("/v1/messages", headers={"Authorization": f"Bearer {child['key']}"}).status_code == 401
    assert admin.http.get("/console/keys").headers["location"].startswith("/console/signin")


def test_auditor_accounts_expire_by_default_and_their_access_ends_with_the_expiry(
    console: Console, owner: Person, tenant: TenantFixture
) -> None:
    console.users.invite(tenant.id, "default@audit.example", "", "auditor", actor="test")
    listed = {u.email: u for u in console.users.list_users(tenant.id)}
    assert listed["default@audit.example"].expires_at == console.clock() + timedelta(days=30)

    until = console.clock() + timedelta(minutes=20)
    _, token = console.users.invite(
        tenant.id, "ext@audit.example", "", "auditor", actor="test", expires_at=until
    )
    auditor = enrol(console, token, "ext@audit.example")
    assert auditor.http.get("/console/audit").status_code == 200
    console.clock.advance(minutes=14)
    assert auditor.http.get("/console/audit").status_code == 200
    console.clock.advance(minutes=7)  # past the account's end, well inside the idle limit
    r = auditor.http.get("/console/audit")
    assert r.headers["location"] == "/console/signin?error=disabled"
    code = pyotp.TOTP(auditor.secret).at(console.clock())
    again = sign_in(console, auditor.email, PASSWORD, code)
    assert again.get("/console/audit").headers["location"].startswith("/console/signin")


def test_smtp_credentials_made_in_the_console_show_their_maker_and_die_with_them(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    # An owner: only a role holding every permission puts ``admin`` on a key.
    user_id, token = console.users.invite(tenant.id, "admin@clinic.example", "", "owner", actor="test")
    admin = enrol(console, token, "admin@clinic.example")
    page = admin.http.get("/console/keys")
    made = admin.http.post("/console/keys/smtp", data={"csrf": csrf(page)})
    assert made.status_code == 200
    username = made.text.split('id="new-smtp-user">', 1)[1].split("<", 1)[0]
    password = made.text.split('id="new-smtp-password">', 1)[1].split("<", 1)[0]
    assert services.tenancy.authenticate_smtp(username, password) is not None
    listing = owner.http.get("/console/keys").text
    assert (
        username in listing and "admin@clinic.example" in listing.split(username, 1)[1].split("</tr>", 1)[0]
    )
    users_page = owner.http.get("/console/users")
    owner.http.post(f"/console/users/{user_id}/disable", data={"csrf": csrf(users_page)})
    wait_until(lambda: services.tenancy.authenticate_smtp(username, password) is None, 15, "cred alive")
    assert "revoked" in owner.http.get("/console/keys").text.split(username, 1)[1].split("</tr>", 1)[0]
