"""The tenant pages over real HTTP on SQLite and PostgreSQL: weakening the policy needs a
written reason (kept in the decisions register and the audit log), reply mailboxes, and
reviewing and releasing the DLP quarantine."""

import sqlalchemy as sa
from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, Person, csrf, person

from sealmail.app import Services
from sealmail.messages.schemas import message_body
from sealmail.store.tables import audit_log
from sealmail.tenancy.tables import console_decisions
from sealmail.users.roles import Role

PHI = "Patient SSN 123-45-6780, see attached."


def post_policy(who: Person, reason: str = "", **flags: str) -> str:
    page = who.http.get("/console/policy")
    form = {
        "csrf": csrf(page),
        "dlp_enabled": "on",
        "dlp_default_action": "require_encryption",
        "reason": reason,
    }
    r = who.http.post("/console/policy", data={**form, **flags})
    return f"{r.status_code} {r.text}"


def test_weakening_the_policy_needs_a_reason_that_lands_in_the_register(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    admin = person(console, tenant.id, "admin@clinic.example", Role.ADMINISTRATOR)
    # Strengthening needs no reason.
    assert post_policy(admin, force_portal="on").startswith("200")
    assert services.tenancy.get_tenant(tenant.id).settings["secureline"]["force_portal"] is True
    # Weakening without a reason is refused and changes nothing.
    refused = post_policy(admin)
    assert refused.startswith("400") and "secureline.force_portal" in refused
    assert services.tenancy.get_tenant(tenant.id).settings["secureline"]["force_portal"] is True
    off = post_policy(admin, reason="too short", dlp_enabled="")
    assert off.startswith("400")
    why = "Patients complained about portal sign-in; TLS is verified for our partners."
    done = post_policy(admin, reason=why)
    assert done.startswith("200") and 'id="policy-saved"' in done
    assert services.tenancy.get_tenant(tenant.id).settings["secureline"]["force_portal"] is False
    with services.engine.connect() as conn:
        rows = conn.execute(sa.select(console_decisions)).all()
        audited = (
            conn.execute(sa.select(audit_log.c.details).where(audit_log.c.action == "decision:recorded"))
            .scalars()
            .all()
        )
    assert [(r.setting, r.before, r.after, r.reason, r.tenant_id) for r in rows] == [
        ("secureline.force_portal", True, False, why, tenant.id)
    ]
    assert rows[0].actor.startswith("user:") and audited == [
        {"setting": "secureline.force_portal", "reason": why}
    ]
    # Compliance reads the register; another tenant's compliance officer does not see it.
    compliance = person(console, tenant.id, "co@clinic.example", Role.COMPLIANCE)
    register = compliance.http.get("/console/decisions")
    assert register.status_code == 200 and why in register.text
    other = make_tenant(services, "Other", "other.example")
    stranger = person(console, other.id, "co@other.example", Role.COMPLIANCE)
    assert why not in stranger.http.get("/console/decisions").text
    assert compliance.http.get("/console/policy").status_code == 403


def test_reply_mailboxes_are_saved_validated_and_shown(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    admin = person(console, tenant.id, "admin@clinic.example", Role.ADMINISTRATOR)
    page = admin.http.get("/console/replies")
    form = {"csrf": csrf(page), "mailbox": "frontdesk@clinic.example", "sender": "NoReply@clinic.example",
            "sender_mailbox": "nurses@clinic.example"}  # fmt: skip
    assert admin.http.post("/console/replies", data=form).status_code == 200
    settings = services.tenancy.get_tenant(tenant.id).settings
    assert settings["reply_mailbox"] == "frontdesk@clinic.example"
    assert settings["reply_mailboxes"] == {"noreply@clinic.example": "nurses@clinic.example"}
    shown = admin.http.get("/console/replies").text
    assert "nurses@clinic.example" in shown and 'value="frontdesk@clinic.example"' in shown
    bad = admin.http.post("/console/replies", data={**form, "sender_mailbox": "not an address"})
    assert bad.status_code == 400 and 'id="replies-error"' in bad.text
    removed = {"csrf": form["csrf"], "mailbox": "", "remove": "noreply@clinic.example"}
    assert admin.http.post("/console/replies", data=removed).status_code == 200
    settings = services.tenancy.get_tenant(tenant.id).settings
    assert settings.get("reply_mailbox") is None and settings.get("reply_mailboxes") is None


def test_held_messages_are_reviewed_without_content_and_released(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    api = console.client()
    api.patch("/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "quarantine"}}}, headers=h)
    body = {"from": "results@clinic.example", "to": ["pat@example.net"], "subject": "Results", "text": PHI}
    mid = api.post("/v1/messages", json=body, headers=h).json()["id"]
    admin = person(console, tenant.id, "admin@clinic.example", Role.ADMINISTRATOR)
    page = admin.http.get("/console/quarantine")
    assert f'data-message="{mid}"' in page.text and "ssn in text" in page.text
    assert "123-45-6780" not in page.text and "Results" not in page.text
    support = person(console, tenant.id, "help@clinic.example", Role.SUPPORT)
    assert (
        support.http.post(f"/console/quarantine/{mid}/release", data={"csrf": csrf(page)}).status_code == 403
    )
    r = admin.http.post(f"/console/quarantine/{mid}/release", data={"csrf": csrf(page)})
    assert r.status_code == 303
    assert message_body(services.messages.get(tenant.principal, mid))["recipients"][0]["status"] == "queued"
    assert f'data-message="{mid}"' not in admin.http.get("/console/quarantine").text
    again = admin.http.post(f"/console/quarantine/{mid}/release", data={"csrf": csrf(page)})
    assert again.status_code in (404, 409)
