"""Every console route with every role: each page is open to exactly the roles whose
permission it names, and a route added without a row here fails the walk."""

import pytest
from starlette.routing import Route
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, csrf, enrol

from sealmail.app import Services, build_console
from sealmail.users import roles
from sealmail.users.roles import Permission as P
from sealmail.users.roles import Role

# (method, path) -> the permission it needs; None: reachable signed out (sign-in steps, assets).
ROUTES: dict[tuple[str, str], P | None] = {
    ("GET", "/static/console.css"): None,
    ("GET", "/static/passkey.js"): None,
    ("GET", "/static/forms.js"): None,
    ("GET", "/static/compose.js"): None,
    ("POST", "/signin/passkey"): None,
    ("POST", "/signin/sso"): None,
    ("GET", "/sso/callback"): None,
    ("GET", "/signin"): None,
    ("POST", "/signin"): None,
    ("GET", "/signin/code"): None,
    ("POST", "/signin/code"): None,
    ("POST", "/signout"): None,
    ("GET", "/welcome/{token}"): None,
    ("GET", "/enroll"): None,
    ("POST", "/enroll"): None,
    ("GET", "/"): P.VIEW_DASHBOARD,
    ("GET", "/messages"): P.VIEW_TRAIL,
    ("GET", "/messages/{message_id}"): P.VIEW_TRAIL,
    ("POST", "/messages/{message_id}/recall"): P.COMPOSE,
    ("POST", "/messages/{message_id}/expiry"): P.COMPOSE,
    ("GET", "/audit"): P.VIEW_AUDIT,
    ("GET", "/users"): P.MANAGE_USERS,
    ("POST", "/users"): P.MANAGE_USERS,
    ("POST", "/users/{user_id}/role"): P.MANAGE_USERS,
    ("POST", "/users/{user_id}/disable"): P.MANAGE_USERS,
    ("GET", "/keys"): P.MANAGE_API_KEYS,
    ("POST", "/keys"): P.MANAGE_API_KEYS,
    ("POST", "/keys/{key_id}/revoke"): P.MANAGE_API_KEYS,
    ("POST", "/keys/smtp"): P.MANAGE_API_KEYS,
    ("POST", "/keys/smtp/{cred_id}/revoke"): P.MANAGE_API_KEYS,
    ("GET", "/passkeys"): P.MANAGE_OWN_SIGNIN,
    ("POST", "/passkeys"): P.MANAGE_OWN_SIGNIN,
    ("POST", "/passkeys/{passkey_id}/remove"): P.MANAGE_OWN_SIGNIN,
    ("GET", "/compose"): P.COMPOSE,
    ("POST", "/compose"): P.COMPOSE,
    ("POST", "/compose/files"): P.COMPOSE,
    ("GET", "/sent"): P.COMPOSE,
    ("GET", "/sent/{message_id}"): P.COMPOSE,
    ("GET", "/content/{message_id}"): P.READ_CONTENT,
    ("GET", "/policy"): P.MANAGE_SETTINGS,
    ("POST", "/policy"): P.MANAGE_SETTINGS,
    ("GET", "/replies"): P.MANAGE_SETTINGS,
    ("POST", "/replies"): P.MANAGE_SETTINGS,
    ("GET", "/quarantine"): P.MANAGE_QUARANTINE,
    ("POST", "/quarantine/{message_id}/release"): P.MANAGE_QUARANTINE,
    ("GET", "/decisions"): P.VIEW_AUDIT,
    ("GET", "/audit/export.csv"): P.VIEW_AUDIT,
    ("GET", "/audit/export.json"): P.VIEW_AUDIT,
    ("GET", "/sso"): P.MANAGE_SIGNIN_POLICY,
    ("POST", "/sso"): P.MANAGE_SIGNIN_POLICY,
    ("GET", "/emergency"): P.MANAGE_OWN_SIGNIN,
    ("POST", "/emergency"): P.MANAGE_OWN_SIGNIN,
    ("POST", "/emergency/end"): P.MANAGE_OWN_SIGNIN,
    ("POST", "/users/{user_id}/break-glass"): P.MANAGE_SIGNIN_POLICY,
    ("POST", "/users/{user_id}/emergency/end"): P.MANAGE_SIGNIN_POLICY,
    ("GET", "/domains"): P.MANAGE_SETTINGS,
    ("GET", "/domains/{name}"): P.MANAGE_SETTINGS,
    ("GET", "/suppressions"): P.MANAGE_SETTINGS,
    ("POST", "/suppressions"): P.MANAGE_SETTINGS,
    ("POST", "/suppressions/remove"): P.MANAGE_SETTINGS,
    ("GET", "/recipient-keys"): P.MANAGE_SETTINGS,
    ("POST", "/recipient-keys/{key_id}/delete"): P.MANAGE_SETTINGS,
    ("GET", "/webhooks"): P.MANAGE_SETTINGS,
    ("GET", "/webhooks/{endpoint_id}"): P.MANAGE_SETTINGS,
    ("POST", "/webhooks/deliveries/{delivery_id}/replay"): P.MANAGE_SETTINGS,
    ("GET", "/templates"): P.COMPOSE,
    ("GET", "/templates/{name}"): P.COMPOSE,
    ("POST", "/templates/{name}/preview"): P.COMPOSE,
    ("GET", "/evidence"): P.VIEW_EVIDENCE,
    ("GET", "/evidence/reports/{name}"): P.VIEW_EVIDENCE,
    ("GET", "/evidence/pack"): P.VIEW_EVIDENCE,
    ("POST", "/evidence/retention"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/holds"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/holds/{hold_id}/release"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/plain"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/plain/{request_id}/revoke"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/preferences"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/preferences/{preference_id}/revoke"): P.MANAGE_EVIDENCE,
    ("GET", "/evidence/review"): P.VIEW_EVIDENCE,
    ("POST", "/evidence/review/sign-off"): P.MANAGE_EVIDENCE,
    ("POST", "/evidence/review/hours"): P.MANAGE_EVIDENCE,
    ("GET", "/marketing"): P.VIEW_MARKETING,
    ("GET", "/marketing/contacts"): P.VIEW_MARKETING,
    ("POST", "/marketing/segments/{segment_id}/count"): P.VIEW_MARKETING,
    ("GET", "/marketing/journeys/{journey_id}"): P.VIEW_MARKETING,
    ("GET", "/marketing/journeys/{journey_id}/nodes.csv"): P.VIEW_MARKETING,
    ("POST", "/marketing/campaigns/{campaign_id}/pause"): P.VIEW_MARKETING,
    ("POST", "/marketing/campaigns/{campaign_id}/cancel"): P.VIEW_MARKETING,
    ("POST", "/marketing/campaigns/{campaign_id}/resume"): P.COMPOSE,
    # The segment, campaign, caps and journey pages (console/marketing_campaign_pages.py).
    ("GET", "/marketing/segments"): P.VIEW_MARKETING,
    ("GET", "/marketing/segments/{segment_id}/edit"): P.VIEW_MARKETING,
    ("POST", "/marketing/segments/build"): P.VIEW_MARKETING,
    ("GET", "/marketing/campaigns"): P.VIEW_MARKETING,
    ("GET", "/marketing/campaigns/new"): P.COMPOSE,
    ("POST", "/marketing/campaigns/new"): P.COMPOSE,
    ("GET", "/marketing/campaigns/{campaign_id}"): P.VIEW_MARKETING,
    ("POST", "/marketing/campaigns/{campaign_id}/start"): P.COMPOSE,
    ("GET", "/marketing/campaigns/{campaign_id}/audience"): P.VIEW_MARKETING,
    ("GET", "/marketing/campaigns/{campaign_id}/stats.csv"): P.VIEW_MARKETING,
    ("GET", "/marketing/caps"): P.VIEW_MARKETING,
    ("POST", "/marketing/caps/{purpose}"): P.MANAGE_SETTINGS,
    ("GET", "/marketing/journeys"): P.VIEW_MARKETING,
    ("POST", "/marketing/journeys"): P.COMPOSE,
    ("GET", "/marketing/journeys/{journey_id}/steps"): P.VIEW_MARKETING,
    ("POST", "/marketing/journeys/{journey_id}/pause"): P.COMPOSE,
    ("POST", "/marketing/journeys/{journey_id}/resume"): P.COMPOSE,
    ("POST", "/marketing/journeys/{journey_id}/activate"): P.COMPOSE,
    ("POST", "/marketing/journeys/{journey_id}/deactivate"): P.COMPOSE,
    # The contact pages (console/marketing_contact_pages.py).
    ("GET", "/marketing/attributes"): P.VIEW_MARKETING,
    ("POST", "/marketing/attributes"): P.MANAGE_SETTINGS,
    ("GET", "/marketing/contacts/import"): P.COMPOSE,
    ("POST", "/marketing/contacts/import"): P.COMPOSE,
    ("GET", "/marketing/imports/{import_id}"): P.VIEW_MARKETING,
    ("GET", "/marketing/imports/{import_id}/errors.csv"): P.VIEW_MARKETING,
    ("GET", "/marketing/contacts/export.csv"): P.VIEW_MARKETING,
    ("GET", "/marketing/contacts/{contact_id}"): P.VIEW_MARKETING,
    ("POST", "/marketing/contacts/{contact_id}/consent"): P.VIEW_MARKETING,
    ("POST", "/marketing/contacts/{contact_id}/authorizations"): P.COMPOSE,
    ("GET", "/marketing/contacts/new"): P.COMPOSE,
    ("POST", "/marketing/contacts/new"): P.COMPOSE,
    ("GET", "/marketing/contacts/{contact_id}/edit"): P.COMPOSE,
    ("POST", "/marketing/contacts/{contact_id}/edit"): P.COMPOSE,
    ("GET", "/marketing/lists"): P.VIEW_MARKETING,
    ("POST", "/marketing/lists"): P.COMPOSE,
    ("GET", "/marketing/lists/{list_id}"): P.VIEW_MARKETING,
    ("POST", "/marketing/lists/{list_id}/members"): P.COMPOSE,
    ("POST", "/marketing/lists/{list_id}/members/remove"): P.COMPOSE,
    ("GET", "/forms"): P.MANAGE_FORMS,
    ("GET", "/forms/new"): P.MANAGE_FORMS,
    ("POST", "/forms"): P.MANAGE_FORMS,
    ("GET", "/forms/{form_id}"): P.MANAGE_FORMS,
    ("POST", "/forms/{form_id}"): P.MANAGE_FORMS,
    ("GET", "/submissions"): P.MANAGE_FORMS,
    ("GET", "/submissions/export.csv"): P.MANAGE_FORMS,
    ("GET", "/submissions/{submission_id}"): P.READ_CONTENT,
    ("GET", "/texts"): P.VIEW_TRAIL,
}
# Path parameters: the walk's target user (None), or ids that exist nowhere.
PARAMS: dict[str, str | None] = {
    "{user_id}": None,
    "{cred_id}": "smc_missing",
    "{key_id}": "key_missing",
    "{message_id}": "msg_missing",
    "{passkey_id}": "pk_missing",
    "{name}": "missing.example",
    "{endpoint_id}": "whe_missing",
    "{delivery_id}": "whd_missing",
    "{hold_id}": "hold_missing",
    "{request_id}": "req_missing",
    "{segment_id}": "seg_missing",
    "{campaign_id}": "cmp_missing",
    "{journey_id}": "jny_missing",
    "{contact_id}": "mkc_missing",
    "{import_id}": "imp_missing",
    "{list_id}": "mkl_missing",
    "{form_id}": "form_missing",
    "{submission_id}": "fsub_missing",
}


@pytest.fixture
def people(console: Console, tenant: TenantFixture) -> dict[Role, Person]:
    out = {}
    for role in Role:
        email = f"{role}@clinic.example"
        _, token = console.users.invite(tenant.id, email, role, role, actor="test")
        out[role] = enrol(console, token, email)
    return out


def test_the_route_table_lists_every_console_route(services: Services) -> None:
    app = build_console(services)
    served = {
        (m, r.path) for r in app.routes if isinstance(r, Route) for m in (r.methods or ()) if m != "HEAD"
    }
    assert served == set(ROUTES)


@pytest.mark.hipaa("164.312(a)(1)")
def test_every_role_reaches_exactly_the_pages_its_permissions_name(
    console: Console, people: dict[Role, Person], tenant: TenantFixture
) -> None:
    # Changed and disabled along the way: someone none of the walkers is.
    target, _ = console.users.invite(tenant.id, "target@clinic.example", "", Role.SENDER, actor="test")
    for role, person in people.items():
        token = session_csrf(person)
        for (method, path), permission in ROUTES.items():
            if permission is None:
                continue
            url = "/console" + path
            for name, value in PARAMS.items():
                url = url.replace(name, value or target)
            # A valid form, so only the role decides (an empty email makes POST /users a 400,
            # no scope makes POST /keys a 422, an unknown key a 404: refusals after the role check).
            form = {"csrf": token, "role": Role.SUPPORT.value, "email": ""}
            r = person.http.get(url) if method == "GET" else person.http.post(url, data=form)
            if role == Role.AUDITOR and path == "/":
                assert r.status_code == 303 and r.headers["location"] == "/console/audit"
            elif roles.allows(role, permission):
                assert r.status_code in (200, 303, 400, 404, 422), (role, method, path, r.status_code)
                assert not r.headers.get("location", "").startswith("/console/signin"), (role, path)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code)
        # Still signed in after the walk: a 403 is a refusal, not a sign-out.
        assert person.http.get("/console/signin").status_code == 200
        assert session_csrf(person) == token


def session_csrf(person: Person) -> str:
    """The session-bound token, read from a page every signed-in role can load."""
    for page in ("/console/audit", "/console/messages", "/console/"):
        r = person.http.get(page)
        if r.status_code == 200:
            return csrf(r)
    raise AssertionError("no page to read a token from")
