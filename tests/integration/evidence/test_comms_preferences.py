"""Confidential-communication preferences (164.522(b)) bind SecureLine at delivery: proven by
real deliveries to loopback MXs.  The patient's MX (home.example) and the alternative one
(alt.example) offer no STARTTLS, so PHI reaches either only by a patient's plain-mail request
(164.524) or as a portal notice; every preference step is in the register and its report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture, make_tenant
from tests.integration.delivery.conftest import MxFarm, mx_settings
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import SmtpSink

from sealmail.app import Services, build_services, build_transport, build_worker
from sealmail.crypto.dkim import dns_records
from sealmail.errors import Conflict, InvalidRequest, NotFound
from sealmail.intake.api.app import create_api
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.store.tables import portal_messages, recipients

pytestmark = pytest.mark.hipaa("164.522(b)")

SECRET = "Your HbA1c is 6.1"
PATIENT = "pat@home.example"
ALTERNATIVE = "pat.private@alt.example"
EVERYTHING = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}


@dataclass
class World:
    services: Services
    home: SmtpSink
    alt: SmtpSink
    clinic: TenantFixture
    other: TenantFixture

    def send(self, tenant: TenantFixture, to: str = PATIENT) -> str:
        body = MessageIn.model_validate(
            {
                "from": f"results@{tenant.domain}",
                "to": [to],
                "subject": "Results",
                "text": SECRET,
                "stream": "phi",
            }
        )
        accepted, _ = self.services.messages.submit(
            tenant.principal, compose.from_message(body, tenant.domain, 1000)
        )

        async def run() -> None:
            transport = build_transport(self.services.settings)
            try:
                await build_worker(self.services, transport).run_until_idle(timeout=60)
            finally:
                await transport.close()

        asyncio.run(run())
        return accepted.id

    def method(self, message_id: str) -> tuple[str, str]:
        with self.services.engine.connect() as conn:
            row = conn.execute(
                sa.select(recipients.c.method, recipients.c.method_reason).where(
                    recipients.c.message_id == message_id
                )
            ).one()
        return str(row.method), str(row.method_reason)

    def http(self) -> TestClient:
        return TestClient(create_api(self.services))

    def auth(self, tenant: TenantFixture | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {(tenant or self.clinic).api_key}"}


@pytest.fixture
def world(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[World]:
    sinks = mx.start({"127.0.0.5": {}, "127.0.0.6": {}})  # no certificate: no STARTTLS
    for domain, ip in (("home.example", "127.0.0.5"), ("alt.example", "127.0.0.6")):
        dns.add(domain, "MX", f"10 mx.{domain}.")
        dns.add(f"mx.{domain}", "A", ip)
    services = build_services(mx_settings(tmp_path, db_url, dns, mx, ca))
    tenants = []
    for name, domain in (("Clinic", "clinic.example"), ("Other", "other.example")):
        tenant = make_tenant(services, name, domain)
        keys = services.identities.create_dkim_keys(tenant.id, domain, actor="test")
        for record in dns_records(domain, keys):
            dns.add(record.name, record.type, record.zone_value)
        tenants.append(tenant)
    yield World(services, sinks["127.0.0.5"], sinks["127.0.0.6"], *tenants)
    services.close()


def test_portal_only_outranks_the_patients_plain_request_until_revoked(world: World) -> None:
    world.services.evidence.plain.record(world.clinic.id, PATIENT, "signed form in chart", "staff:ann")
    plain = world.send(world.clinic)
    assert SECRET.encode() in world.home.wait_for(1)[0].data and world.method(plain)[0] == "plain"

    with world.http() as http:
        no_evidence = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": PATIENT, "kind": "portal_only"},
            headers=world.auth(),
        )
        assert no_evidence.status_code == 422, no_evidence.text
        bad_kind = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": PATIENT, "kind": "carrier_pigeon", "evidence": "x"},
            headers=world.auth(),
        )
        assert bad_kind.status_code == 422 and bad_kind.headers["content-type"].startswith(
            "application/problem"
        )
        made = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": "Pat@Home.example", "kind": "portal_only", "evidence": "call note 2026-12-04"},
            headers=world.auth(),
        )
        assert made.status_code == 201, made.text
        pref = made.json()
        assert (
            pref["address"] == PATIENT
            and pref["state"] == "active"
            and pref["steps"][0]["kind"] == "recorded"
        )
        twice = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": PATIENT, "kind": "portal_only", "evidence": "again"},
            headers=world.auth(),
        )
        assert twice.status_code == 409

    portal = world.send(world.clinic)
    notice = world.home.wait_for(2)[1].data
    assert SECRET.encode() not in notice
    method, reason = world.method(portal)
    assert method == "portal" and pref["id"] in reason and "164.522(b)" in reason

    # Another tenant's mail to the same address is not bound by the clinic's preference.
    other = world.send(world.other)
    assert world.method(other)[0] == "portal" and pref["id"] not in world.method(other)[1]

    with world.http() as http:
        foreign = http.post(
            f"/v1/evidence/comms-preferences/{pref['id']}/revoke", headers=world.auth(world.other)
        )
        assert foreign.status_code == 404
        revoked = http.post(
            f"/v1/evidence/comms-preferences/{pref['id']}/revoke",
            json={"reason": "patient called"},
            headers=world.auth(),
        )
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert [s["kind"] for s in revoked.json()["steps"]] == ["recorded", "revoked"]
        report = http.get("/v1/evidence/reports/comms_preferences", params=EVERYTHING, headers=world.auth())
        assert report.status_code == 200, report.text
        steps = [line.split(",")[5] for line in report.text.strip().splitlines()[1:]]
        assert steps == ["recorded", "revoked"] and "call note 2026-12-04" in report.text
        listed = http.get("/v1/evidence/comms-preferences", params={"active": "true"}, headers=world.auth())
        assert listed.status_code == 200 and listed.json() == []
    again = world.send(world.clinic)
    assert world.method(again)[0] == "plain"


def test_redirect_sends_to_the_alternative_address_and_never_to_the_original(world: World) -> None:
    register = world.services.evidence.preferences
    pref = register.record(world.clinic.id, PATIENT, "redirect", "staff:ann", "staff", "form 12", ALTERNATIVE)
    assert pref.alternative == ALTERNATIVE

    portal = world.send(world.clinic)
    [received] = world.alt.wait_for(1)
    assert received.rcpt_tos == (ALTERNATIVE,) and SECRET.encode() not in received.data
    assert world.home.messages == []
    method, reason = world.method(portal)
    assert method == "portal" and f"redirected to {ALTERNATIVE}" in reason and pref.id in reason
    with world.services.engine.connect() as conn:
        held_for = conn.execute(
            sa.select(portal_messages.c.address).where(portal_messages.c.message_id == portal)
        ).scalar_one()
    assert held_for == ALTERNATIVE  # the portal signs the patient in (and mails codes) there

    # The patient's plain-mail request at the alternative address carries the content there.
    world.services.evidence.plain.record(world.clinic.id, ALTERNATIVE, "form 13", "staff:ann")
    plain = world.send(world.clinic)
    assert SECRET.encode() in world.alt.wait_for(2)[1].data and world.home.messages == []
    assert world.method(plain)[0] == "plain"

    register.revoke(world.clinic.id, pref.id, "staff:ann", "staff", "moved back")
    back = world.send(world.clinic)
    assert world.home.wait_for(1)[0].rcpt_tos == (PATIENT,) and world.method(back)[0] == "portal"


def test_register_refuses_bad_requests_and_scopes_by_tenant(world: World) -> None:
    register = world.services.evidence.preferences
    clinic = world.clinic.id
    with pytest.raises(InvalidRequest):
        register.record(clinic, PATIENT, "redirect", "a", "staff", "form")  # no alternative
    with pytest.raises(InvalidRequest):
        register.record(clinic, PATIENT, "redirect", "a", "staff", "form", "PAT@home.example")
    with pytest.raises(InvalidRequest):
        register.record(clinic, PATIENT, "no_sms", "a", "staff", "form", ALTERNATIVE)
    with pytest.raises(InvalidRequest):
        register.record(clinic, PATIENT, "no_sms", "a", "staff", "  ")  # staff need evidence
    with pytest.raises(InvalidRequest):
        register.record(clinic, "not an address", "no_sms", "a", "portal")
    made = register.record(clinic, PATIENT, "no_sms", "portal:pat", "portal")
    both = register.record(clinic, PATIENT, "portal_only", "portal:pat", "portal")
    standing = register.standing(clinic, [PATIENT.upper()])[PATIENT]
    assert standing.no_sms and standing.portal_only and standing.ids == (made.id, both.id)
    assert register.standing(world.other.id, [PATIENT]) == {}
    with pytest.raises(NotFound):
        register.revoke(world.other.id, made.id, "x", "staff")
    register.revoke(clinic, made.id, "portal:pat", "portal")
    with pytest.raises(Conflict):
        register.revoke(clinic, made.id, "portal:pat", "portal")
    assert not register.standing(clinic, [PATIENT])[PATIENT].no_sms


def test_cli_records_lists_and_revokes(world: World) -> None:
    from tests.integration.evidence.harness import cli_env
    from typer.testing import CliRunner

    from sealmail.cli import app as sealmail_cli

    runner = CliRunner()
    env = cli_env(world.services)
    base, tenant = ["evidence", "prefs"], ["--tenant", world.clinic.id]
    missing = runner.invoke(
        sealmail_cli, [*base, "record", PATIENT, "--kind", "portal_only", *tenant], env=env
    )
    assert missing.exit_code == 2  # --evidence is required
    made = runner.invoke(
        sealmail_cli,
        [
            *base,
            "record",
            PATIENT,
            "--kind",
            "redirect",
            "--alternative",
            ALTERNATIVE,
            "--evidence",
            "n 1",
            *tenant,
        ],
        env=env,
    )
    assert made.exit_code == 0 and '"active"' in made.output, made.output
    [pref] = world.services.evidence.preferences.preferences(world.clinic.id)
    listed = runner.invoke(sealmail_cli, [*base, "list", "--active", *tenant], env=env)
    assert listed.exit_code == 0 and pref.id in listed.output
    revoked = runner.invoke(sealmail_cli, [*base, "revoke", pref.id, "--reason", "asked", *tenant], env=env)
    assert revoked.exit_code == 0 and '"revoked"' in revoked.output, revoked.output
    assert world.services.evidence.preferences.standing(world.clinic.id, [PATIENT]) == {}
