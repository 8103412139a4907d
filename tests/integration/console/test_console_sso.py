"""Single sign-on by OpenID Connect against a real OP on loopback over TLS, on SQLite and
PostgreSQL: the code flow with PKCE, state and nonce; the ID token checked (signature by the
OP's JWKS, iss, aud, exp, nonce); invited people matched by verified email and then by
subject; newcomers only with a default role; every refusal audited, never a session."""

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_settings
from tests.integration.console.console_harness import Console, Person, csrf, person
from tests.support.ca import TestCA
from tests.support.oidc_provider import Provider, new_key, oidc_provider

from sealmail.app import Services
from sealmail.config import Settings
from sealmail.store.tables import audit_log
from sealmail.users.tables import console_sso, console_users

NURSE = "nurse@clinic.example"


@pytest.fixture
def ca() -> Iterator[TestCA]:
    with TestCA() as authority:
        yield authority


@pytest.fixture
def settings(tmp_path: Path, db_url: str, ca: TestCA) -> Settings:
    # The OP's certificate comes from the test CA; loopback is allowed (allow_loopback_fetch).
    return make_settings(tmp_path, db_url, tls_ca_file=ca.ca_file)


@pytest.fixture
def op(ca: TestCA, console: Console) -> Iterator[Provider]:
    with oidc_provider(ca) as provider:
        assert console.sso is not None
        provider.redirect_uris = [console.sso.redirect_uri]
        yield provider


def configure(owner: Person, op: Provider, **extra: str) -> httpx.Response:
    page = owner.http.get("/console/sso")
    assert page.status_code == 200 and op.client_secret not in page.text  # never shown back
    form = {"csrf": csrf(page), "issuer": op.issuer, "client_id": op.client_id, "enabled": "on",
            "require_mfa": "on", "client_secret": op.client_secret, "email_domain": "clinic.example",
            **extra}  # fmt: skip
    return owner.http.post("/console/sso", data=form)


def sso_signin(
    console: Console, ca: TestCA, email: str, browser: httpx.Client | None = None
) -> httpx.Response:
    """The browser's round trip: our start, the OP's authorize, our callback."""
    c = browser or console.client()
    page = c.get("/console/signin")
    assert "sso-email" in page.text
    start = onward(c.post("/console/signin/sso", data={"csrf": csrf(page), "email": email}))
    assert start.status_code == 303, start.text
    if not start.headers["location"].startswith("https://"):
        return start
    with httpx.Client(verify=ca.client_context()) as at_op:
        back = at_op.get(start.headers["location"])
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert callback.startswith(console.url)
    return onward(c.get(callback[len(console.url) :]))


def onward(r: httpx.Response) -> httpx.Response:
    """Where our SSO steps send the browser: a refusal redirects; the start (to the OP) and a
    sign-in answer a page of ours that moves on by meta refresh (the sign-in form's CSP holds
    its redirects to 'self'; a redirect after the OP would not carry the new SameSite=Strict
    cookie), read here as the redirect it stands for."""
    if r.status_code != 200:
        return r
    target = re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', r.text)
    assert target is not None and "<script" not in r.text, r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    return httpx.Response(303, headers={"location": html.unescape(target.group(1))}, request=r.request)


def audit(services: Services, action: str) -> list[dict[str, object]]:
    with services.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(audit_log.c.actor, audit_log.c.target, audit_log.c.details)
                .where(audit_log.c.action == action)
                .order_by(audit_log.c.seq)
            )
        ]


def test_an_invited_person_signs_in_through_the_op_and_is_bound_to_its_subject(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture
) -> None:
    assert configure(owner, op).status_code == 303
    with services.engine.connect() as conn:
        sealed = conn.execute(sa.select(console_sso.c.client_secret)).scalar_one()
    assert op.client_secret.encode() not in sealed  # encrypted at rest
    user_id, _ = console.users.invite(tenant.id, NURSE, "Nurse", "sender", actor="test")
    op.person = {"sub": "entra|42", "email": NURSE, "email_verified": True, "name": "Nurse"}

    browser = console.client()
    done = sso_signin(console, ca, NURSE, browser)
    assert done.status_code == 303 and done.headers["location"] == "/console/", done.text
    assert browser.get("/console/").status_code == 200
    # PKCE and client authentication reached the OP's token endpoint.
    assert len(op.token_requests[-1]["code_verifier"]) >= 43 and "client_secret" not in op.token_requests[-1]
    signed = audit(services, "user:signed_in")[-1]
    assert signed["target"] == user_id and signed["details"] == {"factor": "sso", "issuer": op.issuer}
    assert audit(services, "user:sso_linked")[-1]["target"] == user_id

    # The account is now bound to the OP's subject: another subject with the same email is refused.
    op.person = {**op.person, "sub": "entra|evil"}
    refused = sso_signin(console, ca, NURSE)
    assert refused.headers["location"] == "/console/signin?error=sso"
    assert audit(services, "user:sso_refused")[-1]["details"]["reason"] == "account_bound_to_another_subject"  # type: ignore[index]


def test_strangers_are_refused_unless_a_default_role_lets_them_in(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture
) -> None:
    configure(owner, op)
    op.person = {"sub": "g-1", "email": "newcomer@clinic.example", "email_verified": True}
    assert (
        sso_signin(console, ca, "newcomer@clinic.example").headers["location"] == "/console/signin?error=sso"
    )
    assert audit(services, "user:sso_refused")[-1]["details"]["reason"] == "not_invited"  # type: ignore[index]

    assert configure(owner, op, default_role="support", client_secret="").status_code == 303  # secret kept
    browser = console.client()
    assert sso_signin(console, ca, "newcomer@clinic.example", browser).headers["location"] == "/console/"
    with services.engine.connect() as conn:
        role, by = conn.execute(
            sa.select(console_users.c.role, console_users.c.created_by).where(
                console_users.c.email == "newcomer@clinic.example"
            )
        ).one()
    assert (role, by) == ("support", "sso")
    assert browser.get("/console/users").status_code == 403  # support's pages only

    # An unverified address, or one at another domain, is refused even with a default role.
    op.person = {"sub": "g-2", "email": "other@clinic.example", "email_verified": False}
    assert sso_signin(console, ca, "other@clinic.example").headers["location"].endswith("error=sso")
    op.person = {"sub": "g-3", "email": "x@elsewhere.example", "email_verified": True}
    assert sso_signin(console, ca, "other@clinic.example").headers["location"].endswith("error=sso")
    reasons = [a["details"]["reason"] for a in audit(services, "user:sso_refused")]  # type: ignore[index]
    assert reasons[-2:] == ["email_not_verified", "email_domain_not_allowed"]


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        ({"aud": "someone-else"}, "claim check"),
        ({"iss": "https://evil.example"}, "claim check"),
        ({"nonce": "replayed-nonce"}, "claim check"),
        ({"nonce": None}, "claim check"),
        ({"exp": 1_000_000_000}, "claim check"),
        ({"key": new_key("op-1")}, "signature"),  # same kid, a key the OP never published
        ({"key": new_key("rotated")}, "signature"),  # an unknown kid: JWKS refetched, still unknown
    ],
)
def test_forged_or_stale_id_tokens_are_refused(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture,
    forge: dict[str, object], reason: str,
) -> None:  # fmt: skip
    configure(owner, op)
    console.users.invite(tenant.id, NURSE, "Nurse", "sender", actor="test")
    op.person = {"sub": "entra|42", "email": NURSE, "email_verified": True}
    op.forge = forge
    browser = console.client()
    assert sso_signin(console, ca, NURSE, browser).headers["location"] == "/console/signin?error=sso"
    assert browser.get("/console/").headers["location"].startswith("/console/signin")
    assert reason in str(audit(services, "user:sso_refused")[-1]["details"])


def test_the_callback_only_works_once_and_only_in_the_browser_that_started(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture
) -> None:
    configure(owner, op)
    console.users.invite(tenant.id, NURSE, "Nurse", "sender", actor="test")
    op.person = {"sub": "entra|42", "email": NURSE, "email_verified": True}
    victim = console.client()
    page = victim.get("/console/signin")
    start = onward(victim.post("/console/signin/sso", data={"csrf": csrf(page), "email": NURSE}))
    with httpx.Client(verify=ca.client_context()) as at_op:
        callback = at_op.get(start.headers["location"]).headers["location"][len(console.url) :]
    # Another browser (no binding cookie) presenting the callback gets nothing, and uses it up.
    thief = console.client()
    assert thief.get(callback).headers["location"] == "/console/signin?error=sso"
    assert victim.get(callback).headers["location"] == "/console/signin?error=sso"  # state taken
    assert "did not start" in str(audit(services, "user:sso_refused")[-1]["details"])


def test_a_disabled_person_cannot_sign_in_by_sso_and_the_domain_must_be_verified(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture
) -> None:
    bad = configure(owner, op, email_domain="not-ours.example")
    assert bad.status_code == 400
    configure(owner, op)
    user_id, _ = console.users.invite(tenant.id, NURSE, "Nurse", "sender", actor="test")
    op.person = {"sub": "entra|42", "email": NURSE, "email_verified": True}
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(console_users)
            .where(console_users.c.id == user_id)
            .values(disabled_at=console.clock() - timedelta(minutes=1))
        )
    assert sso_signin(console, ca, NURSE).headers["location"] == "/console/signin?error=sso"
    assert audit(services, "user:sso_refused")[-1]["details"]["reason"] == "account_disabled_or_expired"  # type: ignore[index]
    # An address at a domain no tenant signs in by SSO never leaves for an OP.
    c = console.client()
    page = c.get("/console/signin")
    r = c.post("/console/signin/sso", data={"csrf": csrf(page), "email": "a@nowhere.example"})
    assert r.headers["location"] == "/console/signin?error=sso"


def test_the_op_must_report_mfa_unless_the_owner_says_it_never_does(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture
) -> None:
    configure(owner, op)
    console.users.invite(tenant.id, NURSE, "Nurse", "sender", actor="test")
    op.person = {"sub": "g|7", "email": NURSE, "email_verified": True}
    op.forge = {"amr": ["pwd"]}  # a password alone at the OP
    assert sso_signin(console, ca, NURSE).headers["location"] == "/console/signin?error=sso"
    assert audit(services, "user:sso_refused")[-1]["details"]["reason"] == "op_did_not_report_mfa"  # type: ignore[index]
    op.forge = {"amr": None}  # Google Workspace style: no amr at all, 2-step verification enforced there
    assert sso_signin(console, ca, NURSE).headers["location"].endswith("error=sso")
    assert configure(owner, op, require_mfa="", client_secret="").status_code == 303
    assert sso_signin(console, ca, NURSE).headers["location"] == "/console/"


def test_without_mfa_at_the_op_a_person_with_a_second_factor_is_asked_for_it_here(
    console: Console, owner: Person, op: Provider, ca: TestCA, services: Services, tenant: TenantFixture
) -> None:
    configure(owner, op)
    nurse = person(console, tenant.id, NURSE, "sender")  # enrolled: a password and TOTP of their own
    op.person = {"sub": "entra|42", "email": NURSE, "email_verified": True}
    op.forge = {"amr": ["pwd"]}
    browser = console.client()
    asked = sso_signin(console, ca, NURSE, browser)
    assert asked.headers["location"] == "/console/signin/code", asked.text
    assert browser.get("/console/").headers["location"].startswith("/console/signin")  # not signed in yet
    assert audit(services, "user:sso_second_factor")[-1]["details"] == {
        "reason": "op_did_not_report_mfa", "issuer": op.issuer,
    }  # fmt: skip
    page = browser.get("/console/signin/code")
    wrong = browser.post("/console/signin/code", data={"csrf": csrf(page), "code": "000000"})
    assert wrong.headers["location"] == "/console/signin/code?error=code"
    code = pyotp.TOTP(nurse.secret).at(console.clock())
    done = browser.post("/console/signin/code", data={"csrf": csrf(page), "code": code})
    assert done.headers["location"] == "/console/", done.text
    assert browser.get("/console/").status_code == 200
    assert audit(services, "user:signed_in")[-1]["details"] == {"factor": "totp"}
    # With MFA reported by the OP, no second question.
    op.forge = {}
    assert sso_signin(console, ca, NURSE).headers["location"] == "/console/"
