"""A key may only do what its maker may: the console offers, and the service accepts, only
the scopes the person's role could exercise by hand; a demotion takes the keys the new role
could not have made (and whatever was made through them), nothing else.  SQLite and PostgreSQL."""

import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, csrf, person

from sealmail.app import Services
from sealmail.store.tables import api_keys, smtp_credentials


def _live_keys(services: Services, tenant_id: str) -> dict[str, list[str]]:
    with services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(api_keys.c.name, api_keys.c.scopes).where(
                api_keys.c.tenant_id == tenant_id, api_keys.c.revoked_at.is_(None)
            )
        ).all()
    return {name: sorted(scopes) for name, scopes in rows}


def _make(who: Person, name: str, *scopes: str) -> tuple[int, str]:
    page = who.http.get("/console/keys")
    r = who.http.post(
        "/console/keys", data={"csrf": csrf(page), "name": name, **{f"scope_{s}": "on" for s in scopes}}
    )
    secret = r.text.split('id="new-key">', 1)[1].split("<", 1)[0] if 'id="new-key">' in r.text else ""
    return r.status_code, secret


def test_an_administrator_is_offered_and_granted_only_what_the_role_may_do(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    admin = person(console, tenant.id, "admin@clinic.example", "administrator")
    page = admin.http.get("/console/keys").text
    assert 'name="scope_send"' in page
    assert 'name="scope_read"' not in page and 'name="scope_admin"' not in page
    before = _live_keys(services, tenant.id)
    for scope in ("read", "admin"):
        status, secret = _make(admin, f"sneaky-{scope}", "send", scope)
        assert status == 403 and not secret
    assert _live_keys(services, tenant.id) == before  # nothing half-made
    status, secret = _make(admin, "EHR", "send")
    assert status == 200 and secret
    assert _live_keys(services, tenant.id)["EHR"] == ["send"]
    # The key reads nothing an administrator may not: message content stays closed to it.
    api = console.client()
    assert api.get("/v1/messages", headers={"Authorization": f"Bearer {secret}"}).status_code == 403


def test_a_demoted_owner_loses_the_keys_the_new_role_could_not_make_and_keeps_the_rest(
    console: Console, services: Services, tenant: TenantFixture, owner: Person
) -> None:
    second = person(console, tenant.id, "second@clinic.example", "owner")
    _, admin_secret = _make(second, "full", "admin")
    _, read_secret = _make(second, "reader", "read")
    _, send_secret = _make(second, "sender", "send")
    api = console.client()
    child = api.post(
        "/v1/api-keys", json={"name": "child", "scopes": ["send"]},
        headers={"Authorization": f"Bearer {admin_secret}"},
    ).json()  # fmt: skip
    page = second.http.get("/console/keys")
    assert second.http.post("/console/keys/smtp", data={"csrf": csrf(page)}).status_code == 200

    users = owner.http.get("/console/users")
    user_id = next(u.id for u in console.users.list_users(tenant.id) if u.email == "second@clinic.example")
    r = owner.http.post(f"/console/users/{user_id}/role", data={"csrf": csrf(users), "role": "administrator"})
    assert r.status_code == 303

    live = _live_keys(services, tenant.id)
    assert "sender" in live  # an administrator could have made it: it lives
    assert not {"full", "reader", "child"} & set(live)  # beyond the role, and made through it
    with services.engine.connect() as conn:
        creds = conn.execute(
            sa.select(sa.func.count()).where(
                smtp_credentials.c.created_by == f"user:{user_id}", smtp_credentials.c.revoked_at.is_(None)
            )
        ).scalar_one()
    assert creds == 1  # sending over SMTP is within an administrator's role
    assert child["id"]
    for secret, alive in ((send_secret, True), (read_secret, False)):
        status = api.post("/v1/messages", json={}, headers={"Authorization": f"Bearer {secret}"}).status_code
        assert (status != 401) is alive
