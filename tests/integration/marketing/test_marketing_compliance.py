"""Pre-send compliance checks on SQLite and PostgreSQL: starting a campaign that fails any
check is a 422 naming every failed check, and nothing is queued or changed."""

from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.marketing.conftest import Keys

from sealmail.app import Services
from sealmail.ids import new_id
from sealmail.marketing.tables import mkt_sends
from sealmail.store.tables import audit_log, tenant_identities

ADDRESS = "1 Main St, Springfield, IL 62701"
GOOD = {
    "name": "good",
    "subject": "News",
    "text": "News.\n{{ postal_address }}\nReply to unsubscribe.",
    "html": '<p>News.</p><p>{{ postal_address }}</p><a href="https://clinic.example/u">Unsubscribe</a>',
}
BARE = {
    "name": "bare",
    "subject": "News",
    "text": "News.",
    "html": '<p>News <a href="https://x.example">here</a></p>',
}


def setup(client: TestClient, keys: Keys) -> None:
    for t in (GOOD, BARE):
        assert client.post("/v1/templates", json=t, headers=keys.admin).status_code == 201
    attr = {"name": "plan", "type": "text", "phi_class": "none"}
    assert client.post("/v1/marketing/attributes", json=attr, headers=keys.admin).status_code == 201
    seg = {"name": "all", "rule": {"attr": "plan", "op": "exists"}}
    assert client.post("/v1/marketing/segments", json=seg, headers=keys.admin).status_code == 201
    contact = {"email": "pat@example.net", "attributes": {"plan": "x"}}
    assert client.post("/v1/marketing/contacts", json=contact, headers=keys.admin).status_code == 201


def start(client: TestClient, keys: Keys, purpose: str, template: str, sender: str) -> tuple[str, Any]:
    body = {
        "name": "c",
        "purpose": purpose,
        "segment": "all",
        "from": sender,
        "variants": [{"name": "a", "template": template}],
    }
    created = client.post("/v1/marketing/campaigns", json=body, headers=keys.admin)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    return cid, client.post(f"/v1/marketing/campaigns/{cid}/send", headers=keys.admin)


def failed(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    out: dict[str, list[str]] = {}
    for e in response.json()["errors"]:
        out.setdefault(e["field"].removeprefix("compliance."), []).append(e["message"])
    return out


def sends(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(mkt_sends)).scalar_one())


def test_a_marketing_campaign_failing_every_check_is_refused_naming_each(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)
    cid, r = start(client, keys, "marketing", "bare", "news@unverified.example")
    checks = failed(r)
    assert set(checks) == {"dkim_alignment", "postal_address", "unsubscribe_link"}
    assert "not a verified sender domain" in checks["dkim_alignment"][0]
    assert any("marketing.postal_address" in m for m in checks["postal_address"])
    # Both parts of the variant are named: text lacks the instruction, html the link.
    assert len(checks["unsubscribe_link"]) == 2
    assert "dkim_alignment" in r.json()["detail"]
    got = client.get(f"/v1/marketing/campaigns/{cid}", headers=keys.admin).json()
    assert got["status"] == "draft" and sends(services) == 0
    listed = client.get(f"/v1/marketing/campaigns/{cid}/checks", headers=keys.reader).json()["failed"]
    assert {c["check"] for c in listed} == set(checks)


def test_the_postal_address_is_required_then_rendered_and_a_fixed_campaign_starts(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)
    _, r = start(client, keys, "fundraising", "good", "Clinic <news@clinic.example>")
    assert set(failed(r)) == {"postal_address"}  # the template is right; the setting is missing
    bad = client.patch("/v1/tenant/settings", json={"marketing": {"postal_address": "x"}}, headers=keys.admin)
    assert bad.status_code == 422
    ok = {"marketing": {"postal_address": ADDRESS}}
    assert client.patch("/v1/tenant/settings", json=ok, headers=keys.admin).status_code == 200
    _, r = start(client, keys, "fundraising", "good", "Clinic <news@clinic.example>")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "starting" and sends(services) == 0  # expanded in the background
    assert services.marketing.runs.expand_due("test") == 1
    assert sends(services) == 1
    # The literal address is accepted in place of the variable.
    literal = {**GOOD, "name": "literal", "text": f"News.\n{ADDRESS}\nunsubscribe: reply STOP", "html": None}
    assert client.post("/v1/templates", json=literal, headers=keys.admin).status_code == 201
    _, r = start(client, keys, "marketing", "literal", "news@clinic.example")
    assert r.status_code == 202, r.text


def test_dkim_alignment_needs_an_active_key_and_accepts_a_subdomain(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    setup(client, keys)
    ok = {"marketing": {"postal_address": ADDRESS}}
    assert client.patch("/v1/tenant/settings", json=ok, headers=keys.admin).status_code == 200
    _, r = start(client, keys, "marketing", "good", "news@mail.clinic.example")
    assert r.status_code == 202, r.text  # relaxed alignment: a subdomain of the verified domain
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(tenant_identities)
            .where(tenant_identities.c.tenant_id == tenant.id, tenant_identities.c.kind == "dkim")
            .values(active=False)
        )
    _, r = start(client, keys, "marketing", "good", "news@clinic.example")
    assert failed(r) == {
        "dkim_alignment": ["clinic.example has no active DKIM key; POST /v1/domains/clinic.example/dkim"]
    }


def started_details(services: Services, campaign_id: str) -> dict[str, Any]:
    with services.engine.connect() as conn:
        details = conn.execute(
            sa.select(audit_log.c.details).where(
                audit_log.c.action == "mkt_campaign:started", audit_log.c.target == campaign_id
            )
        ).scalar_one()
    return dict(details)


def test_phi_purposes_are_untracked_by_default_and_tracked_only_on_the_tenants_opt_in(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)
    # Tracking on, streams left out: the phi stream is not tracked, and treatment starts.
    track = {"tracking": {"opens": True, "clicks": True}, "reason": "test"}
    assert client.patch("/v1/tenant/settings", json=track, headers=keys.admin).status_code == 200
    cid, r = start(client, keys, "treatment", "bare", "news@clinic.example")
    assert r.status_code == 202, r.text
    assert started_details(services, cid)["phi_tracking"] == "off"
    # The tenant lists "phi" by name: its explicit opt-in.  Treatment and operations start
    # (they were refused before), and each start records the decision.
    track = {"tracking": {"opens": True, "clicks": True, "streams": ["phi", "broadcast"]}, "reason": "test"}
    assert client.patch("/v1/tenant/settings", json=track, headers=keys.admin).status_code == 200
    for purpose in ("treatment", "operations"):
        cid, r = start(client, keys, purpose, "bare", "news@clinic.example")
        assert r.status_code == 202, r.text
        assert started_details(services, cid)["phi_tracking"] == "tenant_opt_in"
    # Not a PHI purpose: nothing to record (its footer checks still apply).
    ok = {"marketing": {"postal_address": ADDRESS}}
    assert client.patch("/v1/tenant/settings", json=ok, headers=keys.admin).status_code == 200
    cid, r = start(client, keys, "marketing", "good", "news@clinic.example")
    assert r.status_code == 202, r.text
    assert "phi_tracking" not in started_details(services, cid)


def test_a_journey_records_its_phi_tracking_decision_per_send_step(
    client: TestClient, keys: Keys, services: Services
) -> None:
    setup(client, keys)
    steps = [
        {"send": {"template": "bare", "purpose": "treatment", "from": "news@clinic.example"}},
        {"send": {"template": "bare", "purpose": "operations", "from": "news@clinic.example"}},
    ]

    def save() -> dict[str, Any]:
        body = {"name": "j", "definition": {"trigger": {"type": "api_event", "event": "e"}, "steps": steps}}
        r = client.post("/v1/marketing/journeys", json=body, headers=keys.admin)
        assert r.status_code == 201, r.text
        with services.engine.connect() as conn:
            return dict(
                conn.execute(
                    sa.select(audit_log.c.details).where(
                        audit_log.c.action == "mkt_journey:saved", audit_log.c.target == r.json()["id"]
                    )
                ).scalar_one()
            )

    assert save()["phi_tracking"] == {"0": "off", "1": "off"}
    track = {"tracking": {"opens": True, "streams": ["phi"]}, "reason": "test"}
    assert client.patch("/v1/tenant/settings", json=track, headers=keys.admin).status_code == 200
    assert save()["phi_tracking"] == {"0": "tenant_opt_in", "1": "tenant_opt_in"}


def test_dkim_alignment_compares_the_key_name_literally_not_as_a_pattern(
    client: TestClient, keys: Keys, services: Services, tenant: TenantFixture
) -> None:
    setup(client, keys)
    ok = {"marketing": {"postal_address": ADDRESS}}
    assert client.patch("/v1/tenant/settings", json=ok, headers=keys.admin).status_code == 200
    mine = tenant_identities.c.tenant_id == tenant.id
    with services.engine.begin() as conn:
        key = conn.execute(
            sa.select(tenant_identities).where(mine, tenant_identities.c.kind == "dkim")
        ).first()
        assert key is not None
        conn.execute(sa.update(tenant_identities).where(mine).values(active=False))

    def key_named(name: str) -> None:
        with services.engine.begin() as conn:
            conn.execute(sa.update(tenant_identities).where(mine).values(active=False))
            conn.execute(
                sa.insert(tenant_identities).values(
                    {**key._asdict(), "id": new_id("tid"), "name": name, "active": True}
                )
            )

    # Hostile names a LIKE '%._domainkey.clinic.example' matched: "_" is any one character,
    # and "%" in a name is just a character here.
    for hostile in (
        "s.Xdomainkey.clinic.example",
        "s%_domainkey.clinic.example",
        "s._domainkeyXclinic.example",
        "%._domainkey.clinic.example.evil",
    ):
        key_named(hostile)
        _, r = start(client, keys, "marketing", "good", "news@clinic.example")
        assert set(failed(r)) == {"dkim_alignment"}, hostile
    # DNS names are case-insensitive: the same key in capitals aligns.
    key_named("SEL._DOMAINKEY.Clinic.Example")
    _, r = start(client, keys, "marketing", "good", "news@clinic.example")
    assert r.status_code == 202, r.text
    # A From domain with a wildcard character is not an address at all.
    for sender in ("news@clinic_example", "news@clin%c.example"):
        body = {"name": "c", "purpose": "marketing", "segment": "all", "from": sender}
        body["variants"] = [{"name": "a", "template": "good"}]
        r = client.post("/v1/marketing/campaigns", json=body, headers=keys.admin)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from", r.text


def test_another_tenants_campaign_checks_are_404(
    client: TestClient, keys: Keys, services: Services, other_tenant: TenantFixture
) -> None:
    setup(client, keys)
    cid, _ = start(client, keys, "marketing", "bare", "news@clinic.example")
    other = {"Authorization": f"Bearer {other_tenant.api_key}"}
    assert client.get(f"/v1/marketing/campaigns/{cid}/checks", headers=other).status_code == 404
