"""The console's marketing pages over real HTTP: what each role sees of contacts follows
its PHI-class permissions, and counting a segment is a CSRF-checked, audited POST that a
role without the segment's classes is refused."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, console_server, csrf, enrol
from tests.integration.marketing.conftest import Keys

from sealmail.app import Services
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def person(console: Console, tenant: TenantFixture, role: Role) -> Person:
    email = f"{role}@clinic.example"
    _, token = console.users.invite(tenant.id, email, str(role), role, actor="test")
    return enrol(console, token, email)


def test_each_role_sees_only_the_phi_classes_it_holds(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    body = {
        "email": "pat@example.net",
        "attributes": {"city": "Austin", "diagnosis": "asthma", "hiv_status": "positive"},
    }
    assert client.post("/v1/marketing/contacts", json=body, headers=declared.admin).status_code == 201
    rule = {"attr": "diagnosis", "op": "eq", "value": "asthma"}
    seg = client.post(
        "/v1/marketing/segments", json={"name": "asthma", "rule": rule}, headers=declared.admin
    ).json()
    sender, compliance = person(console, tenant, Role.SENDER), person(console, tenant, Role.COMPLIANCE)
    seen = sender.http.get("/console/marketing/contacts")
    assert seen.status_code == 200 and "city=Austin" in seen.text
    assert "asthma" not in seen.text and "positive" not in seen.text and "clinical, sensitive" in seen.text
    full = compliance.http.get("/console/marketing/contacts").text
    assert "diagnosis=asthma" in full and "hiv_status=positive" in full
    overview = sender.http.get("/console/marketing")
    assert "not for your role" in overview.text
    refused = sender.http.post(
        f"/console/marketing/segments/{seg['id']}/count", data={"csrf": csrf(overview)}
    )
    assert refused.status_code == 403
    page = compliance.http.get("/console/marketing")
    forged = compliance.http.post(f"/console/marketing/segments/{seg['id']}/count", data={"csrf": "0" * 64})
    assert forged.status_code == 403
    counted = compliance.http.post(
        f"/console/marketing/segments/{seg['id']}/count", data={"csrf": csrf(page)}
    )
    assert counted.status_code == 200 and "1 contacts match now" in counted.text
    support = person(console, tenant, Role.SUPPORT)
    assert support.http.get("/console/marketing").status_code == 403
    with services.engine.connect() as conn:
        actors = [
            a
            for (a,) in conn.execute(
                sa.select(audit_log.c.actor).where(audit_log.c.action == "mkt_segment:evaluated")
            )
        ]
    assert len(actors) == 1 and actors[0].startswith("user:")


def test_the_overview_names_the_pre_send_checks_a_draft_campaign_fails(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys
) -> None:
    template = {"name": "bare", "subject": "News", "text": "News."}
    assert client.post("/v1/templates", json=template, headers=declared.admin).status_code == 201
    everyone = {"name": "all", "rule": {"attr": "city", "op": "exists"}}
    assert client.post("/v1/marketing/segments", json=everyone, headers=declared.admin).status_code == 201
    body = {
        "name": "Spring drive",
        "purpose": "fundraising",
        "segment": "all",
        "from": "news@clinic.example",
        "variants": [{"name": "a", "template": "bare"}],
    }
    assert client.post("/v1/marketing/campaigns", json=body, headers=declared.admin).status_code == 201
    page = person(console, tenant, Role.COMPLIANCE).http.get("/console/marketing")
    assert page.status_code == 200
    assert "postal_address" in page.text and "unsubscribe_link" in page.text
    assert "dkim_alignment" not in page.text  # clinic.example is verified with DKIM keys
