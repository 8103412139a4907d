"""Passkeys over real HTTP on SQLite and PostgreSQL, with a software authenticator: a person
adds one, signs in with it instead of a code, and every way a ceremony can be abused is
refused (replay, a stale counter, another origin, another person's key, an old challenge)."""

import re
from html import unescape

import httpx
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import PASSWORD, Console, Person, csrf, enrol
from tests.support.soft_authenticator import SoftAuthenticator

from sealmail.app import Services
from sealmail.store.tables import audit_log
from sealmail.users.tables import console_challenges, console_passkeys

OPTIONS = re.compile(r'data-options="([^"]+)"')


def options(page: httpx.Response) -> str:
    m = OPTIONS.search(page.text)
    assert m, f"no passkey options on {page.url}"
    return unescape(m.group(1))


def add_passkey(console: Console, person: Person, name: str = "Laptop") -> SoftAuthenticator:
    auth = SoftAuthenticator(console.url)
    page = person.http.get("/console/passkeys")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    r = person.http.post(
        "/console/passkeys", data={"csrf": csrf(page), "name": name, "credential": auth.create(options(page))}
    )
    assert r.status_code == 200 and "Passkey added." in r.text, r.text
    return auth


def password_step(console: Console, email: str) -> tuple[httpx.Client, httpx.Response]:
    c = console.client()
    page = c.get("/console/signin")
    r = c.post("/console/signin", data={"csrf": csrf(page), "email": email, "password": PASSWORD})
    assert r.headers["location"] == "/console/signin/code"
    return c, c.get("/console/signin/code")


def passkey_step(c: httpx.Client, page: httpx.Response, credential: str) -> httpx.Response:
    return c.post("/console/signin/passkey", data={"csrf": csrf(page), "credential": credential})


def audit_actions(services: Services, tenant_id: str) -> list[str]:
    with services.engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(audit_log.c.action)
                .where(audit_log.c.tenant_id == tenant_id)
                .order_by(audit_log.c.seq)
            ).scalars()
        )


def test_a_person_adds_a_passkey_and_signs_in_with_it_instead_of_a_code(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    plain = owner.http.get("/console/users")
    assert "script-src" not in plain.headers["content-security-policy"]  # only the passkey pages
    auth = add_passkey(console, owner)
    listed = owner.http.get("/console/passkeys")
    assert "Laptop" in listed.text

    c, page = password_step(console, owner.email)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    r = passkey_step(c, page, auth.get(options(page)))
    assert r.status_code == 303 and r.headers["location"] == "/console/", r.text
    assert c.get("/console/").status_code == 200
    with services.engine.connect() as conn:
        count = conn.execute(sa.select(console_passkeys.c.sign_count)).scalar_one()
        left = conn.execute(
            sa.select(sa.func.count()).where(console_challenges.c.purpose == "pk-signin")
        ).scalar_one()
    assert count == 1 and left == 0  # the counter advanced; the challenge was taken
    acts = audit_actions(services, tenant.id)
    assert "user:passkey_added" in acts and acts[-1] == "user:signed_in"


def test_replayed_cloned_foreign_and_stale_assertions_are_refused(
    console: Console, owner: Person, services: Services, tenant: TenantFixture
) -> None:
    auth = add_passkey(console, owner)
    # A replay: the same assertion twice (the challenge is taken by the first use).
    c, page = password_step(console, owner.email)
    good = auth.get(options(page))
    assert passkey_step(c, page, good).headers["location"] == "/console/"
    c2, page2 = password_step(console, owner.email)
    options(page2)  # a fresh challenge exists for this attempt, but the old answer signs the old one
    assert passkey_step(c2, page2, good).headers["location"] == "/console/signin/code?error=code"

    # A cloned authenticator: a valid signature over a counter that did not advance.
    c3, page3 = password_step(console, owner.email)
    auth.count = 0
    assert passkey_step(c3, page3, auth.get(options(page3))).headers["location"].endswith("error=code")

    # Another origin (a phishing site relaying the challenge) and another RP ID.
    auth.count = 10
    c4, page4 = password_step(console, owner.email)
    evil = auth.get(options(page4), origin="https://c1inic.example")
    assert passkey_step(c4, page4, evil).headers["location"].endswith("error=code")
    c5, page5 = password_step(console, owner.email)
    other_rp = auth.get(options(page5), rp_id="c1inic.example")
    assert passkey_step(c5, page5, other_rp).headers["location"].endswith("error=code")

    # An old challenge: past five minutes it is dead.  (The fifth failure: the account locks.)
    c6, page6 = password_step(console, owner.email)
    late = auth.get(options(page6))
    console.clock.advance(minutes=6)
    assert passkey_step(c6, page6, late).headers["location"] == "/console/signin?error=locked"
    assert "user:locked" in audit_actions(services, tenant.id)
    # Junk is a refusal, not a 500.
    console.clock.advance(minutes=30)  # past the lockout
    c7, page7 = password_step(console, owner.email)
    assert passkey_step(c7, page7, '{"id": 5}').status_code == 303
    assert audit_actions(services, tenant.id).count("user:signin_failed") >= 4


def test_a_passkey_only_signs_in_the_person_who_registered_it(
    console: Console, owner: Person, tenant: TenantFixture
) -> None:
    _, token = console.users.invite(tenant.id, "nurse@clinic.example", "Nurse", "sender", actor="test")
    nurse = enrol(console, token, "nurse@clinic.example")
    owner_key = add_passkey(console, owner)
    add_passkey(console, nurse, "Nurse key")
    c, page = password_step(console, nurse.email)
    # The owner's authenticator answers the nurse's challenge: not the nurse's credential.
    r = passkey_step(c, page, owner_key.get(options(page).replace("nurse", "x")))
    assert r.headers["location"].endswith("error=code")


def test_the_same_authenticator_cannot_register_twice_and_removal_is_own_only(
    console: Console, owner: Person, tenant: TenantFixture, services: Services
) -> None:
    auth = add_passkey(console, owner)
    page = owner.http.get("/console/passkeys")
    again = owner.http.post(
        "/console/passkeys",
        data={"csrf": csrf(page), "name": "again", "credential": auth.create(options(page))},
    )
    assert again.status_code == 400
    # Without asking for options first there is no challenge to answer.
    stale = owner.http.post(
        "/console/passkeys", data={"csrf": csrf(page), "name": "x", "credential": auth.create(options(page))}
    )
    assert stale.status_code == 400
    with services.engine.connect() as conn:
        pk_id = conn.execute(sa.select(console_passkeys.c.id)).scalar_one()
    _, token = console.users.invite(tenant.id, "admin@clinic.example", "", "administrator", actor="test")
    admin = enrol(console, token, "admin@clinic.example")
    page = admin.http.get("/console/passkeys")
    assert admin.http.post(f"/console/passkeys/{pk_id}/remove", data={"csrf": csrf(page)}).status_code == 404
    page = owner.http.get("/console/passkeys")
    r = owner.http.post(f"/console/passkeys/{pk_id}/remove", data={"csrf": csrf(page)})
    assert r.status_code == 303
    assert "No passkeys yet." in owner.http.get("/console/passkeys").text
    assert "user:passkey_removed" in audit_actions(services, tenant.id)
    # With no passkey the code page offers none (and runs no script).
    _, code_page = password_step(console, owner.email)
    assert "data-passkey" not in code_page.text
    assert "script-src" not in code_page.headers["content-security-policy"]
