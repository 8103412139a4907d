"""Confidential-communication preferences (164.522(b)) bind SecureLine at delivery: proven by
real deliveries to loopback MXs.  The patient's MX (home.example) and the alternative one
(alt.example) offer no STARTTLS, so PHI reaches either only by a patient's plain-mail request
(164.524) or as a portal notice; every preference step is in the register and its report."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.delivery.conftest import MxFarm
from tests.integration.evidence.patients import PATIENT, SECRET, World, patient_world
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.errors import Conflict, InvalidRequest, NotFound
from sealmail.intake.api.app import create_api
from sealmail.store.tables import portal_messages

pytestmark = pytest.mark.hipaa("164.522(b)")

ALTERNATIVE = "pat.private@alt.example"
EVERYTHING = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}


@pytest.fixture
def world(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[World]:
    domains = {"home.example": "127.0.0.5", "alt.example": "127.0.0.6"}
    with patient_world(tmp_path, db_url, dns, ca, mx, domains) as w:
        yield w


def _http(world: World) -> TestClient:
    return TestClient(create_api(world.services))


def _auth(tenant: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.api_key}"}


def test_portal_only_outranks_the_patients_plain_request_until_revoked(world: World) -> None:
    world.services.evidence.plain.record(world.clinic.id, PATIENT, "signed form in chart", "staff:ann")
    plain = world.send(world.clinic)
    assert (
        SECRET.encode() in world.sinks["home.example"].wait_for(1)[0].data
        and world.method(plain)[0] == "plain"
    )

    with _http(world) as http:
        no_evidence = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": PATIENT, "kind": "portal_only"},
            headers=_auth(world.clinic),
        )
        assert no_evidence.status_code == 422, no_evidence.text
        bad_kind = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": PATIENT, "kind": "carrier_pigeon", "evidence": "x"},
            headers=_auth(world.clinic),
        )
        assert bad_kind.status_code == 422 and bad_kind.headers["content-type"].startswith(
            "application/problem"
        )
        made = http.post(
            "/v1/evidence/comms-preferences",
            json={"address": "Pat@Home.example", "kind": "portal_only", "evidence": "call note 2026-12-04"},
            headers=_auth(world.clinic),
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
            headers=_auth(world.clinic),
        )
        assert twice.status_code == 409

    portal = world.send(world.clinic)
    notice = world.sinks["home.example"].wait_for(2)[1].data
    assert SECRET.encode() not in notice
    method, reason = world.method(portal)
    assert method == "portal" and pref["id"] in reason and "164.522(b)" in reason

    # Another tenant's mail to the same address is not bound by the clinic's preference.
    other = world.send(world.other)
    assert world.method(other)[0] == "portal" and pref["id"] not in world.method(other)[1]

    with _http(world) as http:
        foreign = http.post(f"/v1/evidence/comms-preferences/{pref['id']}/revoke", headers=_auth(world.other))
        assert foreign.status_code == 404
        revoked = http.post(
            f"/v1/evidence/comms-preferences/{pref['id']}/revoke",
            json={"reason": "patient called"},
            headers=_auth(world.clinic),
        )
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        assert [s["kind"] for s in revoked.json()["steps"]] == ["recorded", "revoked"]
        report = http.get(
            "/v1/evidence/reports/comms_preferences", params=EVERYTHING, headers=_auth(world.clinic)
        )
        assert report.status_code == 200, report.text
        steps = [line.split(",")[5] for line in report.text.strip().splitlines()[1:]]
        assert steps == ["recorded", "revoked"] and "call note 2026-12-04" in report.text
        listed = http.get(
            "/v1/evidence/comms-preferences", params={"active": "true"}, headers=_auth(world.clinic)
        )
        assert listed.status_code == 200 and listed.json() == []
    again = world.send(world.clinic)
    assert world.method(again)[0] == "plain"


def test_redirect_sends_to_the_alternative_address_and_never_to_the_original(world: World) -> None:
    register = world.services.evidence.preferences
    pref = register.record(world.clinic.id, PATIENT, "redirect", "staff:ann", "staff", "form 12", ALTERNATIVE)
    assert pref.alternative == ALTERNATIVE

    portal = world.send(world.clinic)
    [received] = world.sinks["alt.example"].wait_for(1)
    assert received.rcpt_tos == (ALTERNATIVE,) and SECRET.encode() not in received.data
    assert world.sinks["home.example"].messages == []
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
    assert (
        SECRET.encode() in world.sinks["alt.example"].wait_for(2)[1].data
        and world.sinks["home.example"].messages == []
    )
    assert world.method(plain)[0] == "plain"

    register.revoke(world.clinic.id, pref.id, "staff:ann", "staff", "moved back")
    back = world.send(world.clinic)
    assert (
        world.sinks["home.example"].wait_for(1)[0].rcpt_tos == (PATIENT,)
        and world.method(back)[0] == "portal"
    )


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


class _Texts:
    """Stands in for the SMS notice port (``delivery/texter.py``): records who would be texted."""

    def __init__(self) -> None:
        self.texted: list[str] = []

    async def portal_notice(self, **notice: str) -> None:
        self.texted.append(notice["address"])


def test_no_sms_keeps_the_portal_notice_off_the_phone_and_says_so(world: World) -> None:
    texts = _Texts()
    world.services.portal_texts = texts  # type: ignore[assignment]  # the port, faked: no provider
    world.send(world.clinic)
    assert texts.texted == [PATIENT]  # without a preference the link is texted too
    pref = world.services.evidence.preferences.record(
        world.clinic.id, PATIENT, "no_sms", "portal:pat", "portal"
    )
    quiet = world.send(world.clinic)
    assert texts.texted == [PATIENT]
    method, reason = world.method(quiet)
    assert method == "portal" and "no SMS notice" in reason and pref.id in reason
    assert (
        SECRET.encode() not in world.sinks["home.example"].wait_for(2)[1].data
    )  # the e-mail notice still goes


def test_redirect_encrypts_with_the_alternative_addresses_key(
    tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm
) -> None:
    domains = {"home.example": "127.0.0.5", "alt.example": "127.0.0.6"}
    # The PHI stream's floor wants TLS even under OpenPGP: the alternative MX offers it.
    with patient_world(tmp_path, db_url, dns, ca, mx, domains, tls=("alt.example",)) as world:
        _redirect_encrypts(world)


def _redirect_encrypts(world: World) -> None:
    from sealmail.crypto.pgp import generate_tenant_key

    _, public = generate_tenant_key(f"Pat <{ALTERNATIVE}>")
    world.services.keydir.upload(world.clinic.id, public, "test")
    pref = world.services.evidence.preferences.record(
        world.clinic.id, PATIENT, "redirect", "staff:ann", "staff", "form 12", ALTERNATIVE
    )
    sent = world.send(world.clinic)
    [received] = world.sinks["alt.example"].wait_for(1)
    assert received.rcpt_tos == (ALTERNATIVE,)
    assert b"BEGIN PGP MESSAGE" in received.data and SECRET.encode() not in received.data
    assert world.sinks["home.example"].messages == []
    method, reason = world.method(sent)
    assert method == "pgp" and f"redirected to {ALTERNATIVE}" in reason and pref.id in reason
