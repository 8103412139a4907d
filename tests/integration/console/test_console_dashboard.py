"""The dashboard's charts over real HTTP on SQLite and PostgreSQL: server-rendered SVG (no
script, no style attribute) whose numbers match the table one click away, counted from
real accepted, held and delivered messages of this tenant only."""

import asyncio
import re

from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, Person, enrol, person
from tests.integration.console.test_console_compose import compose

from sealmail.app import Services
from sealmail.runtime import build_transport, build_worker
from sealmail.users.roles import Role

SSN = "Patient SSN 123-45-6780."


def send(console: Console, key: str, **over: object) -> str:
    body = {"from": "results@clinic.example", "to": ["pat@example.net"], "text": "Hello", **over}
    r = console.client().post("/v1/messages", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def deliver(services: Services) -> None:
    async def run() -> None:
        transport = build_transport(services.settings)
        try:
            await build_worker(services, transport).run_until_idle(timeout=30)
        finally:
            await transport.close()

    asyncio.run(run())


def test_charts_and_their_numbers_follow_the_tenants_mail(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    console.client().patch("/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "quarantine"}}}, headers=h)
    for _ in range(2):
        send(console, tenant.api_key, stream="phi")
    send(console, tenant.api_key)
    send(console, tenant.api_key, stream="phi", text=SSN)  # held by DLP
    deliver(services)
    other = make_tenant(services, "Other", "other.example")
    send(console, other.api_key, **{"from": "x@other.example"})
    _, token = console.users.invite(tenant.id, "co@clinic.example", "", Role.COMPLIANCE, actor="test")
    page = enrol(console, token, "co@clinic.example").http.get("/console/")
    assert page.status_code == 200
    html = page.text
    assert html.count('<svg class="chart"') == 4 and 'role="img"' in html
    assert "<script" not in html and not re.search(r"<(svg|rect|text)[^>]* style=", html)
    # Today's column per stream: phi 3 (two sent, one held), transactional 1.
    today = re.findall(r"<title>(phi|transactional) (\d{4}-\d\d-\d\d): (\d+)</title>", html)
    assert {(s, n) for s, _, n in today} == {("phi", "3"), ("transactional", "1")}
    assert re.search(r'id="dlp-hits">1<', html) and re.search(r'id="quarantined">1<', html)
    # Three recipients were attempted; each attempt counted under its TLS version (or none).
    tls = dict(
        re.findall(r"<title>([^<:]+): (\d+)</title>", html.split('id="tls"')[1].split("</section>")[0])
    )
    assert sum(int(n) for n in tls.values()) == 3, tls
    method = html.split('id="sl"')[1].split("</section>")[0]
    assert "<title>" in method


def todays_total(html: str) -> int:
    return sum(int(n) for n in re.findall(r"<title>[\w-]+ \d{4}-\d\d-\d\d: (\d+)</title>", html))


def test_a_senders_dashboard_counts_only_their_own_messages(
    console: Console, services: Services, tenant: TenantFixture, owner: Person
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    bob = person(console, tenant.id, "bob@clinic.example", Role.SENDER)
    admin = person(console, tenant.id, "admin@clinic.example", Role.ADMINISTRATOR)
    assert compose(alice).status_code == 303
    assert compose(bob).status_code == 303
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    console.client().patch("/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "quarantine"}}}, headers=h)
    send(console, tenant.api_key, stream="phi", text=SSN)  # the tenant's key: held by DLP, not hers
    send(console, tenant.api_key)

    mine = alice.http.get("/console/").text
    assert 'id="own-only"' in mine
    assert todays_total(mine) == 1
    assert re.search(r'id="dlp-hits">0<', mine) and re.search(r'id="quarantined">0<', mine)
    assert 'id="own-only"' in bob.http.get("/console/").text
    for whole in (owner, admin):
        html = whole.http.get("/console/").text
        assert 'id="own-only"' not in html
        assert todays_total(html) == 4
        assert re.search(r'id="quarantined">1<', html)
