"""Right of access, unencrypted by request (164.524(c)(2), HHS guidance): plain mail only to
the confirmed address, only for that tenant, only while the request stands; every step in
the register.  The patient's MX offers no STARTTLS, so without a request PHI goes only as a
portal notice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.integration.delivery.conftest import MxFarm
from tests.integration.evidence.patients import PATIENT, SECRET, World, patient_world
from tests.support.ca import TestCA
from tests.support.dns_server import DnsServer

from sealmail.errors import Conflict, InvalidRequest
from sealmail.intake.api.app import create_api

pytestmark = pytest.mark.hipaa("164.524(c)(2)")


@pytest.fixture
def world(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[World]:
    with patient_world(tmp_path, db_url, dns, ca, mx, {"home.example": "127.0.0.5"}) as w:
        yield w


def test_plain_mail_only_after_confirmed_request_for_that_address_and_tenant(world: World) -> None:
    before = world.send(world.clinic)
    assert SECRET.encode() not in world.received(1)
    assert world.method(before)[0] == "portal"

    auth = {"Authorization": f"Bearer {world.clinic.api_key}"}
    with TestClient(create_api(world.services)) as http:
        no_evidence = http.post("/v1/evidence/plain-requests", json={"address": PATIENT}, headers=auth)
        assert no_evidence.status_code == 422, no_evidence.text
        made = http.post(
            "/v1/evidence/plain-requests",
            json={"address": "Pat@Home.example", "evidence": "signed request form, chart 2026-12-01"},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        request = made.json()
        assert request["state"] == "confirmed" and request["address"] == PATIENT
        assert [s["kind"] for s in request["steps"]] == ["requested", "warned", "confirmed"]
        again = http.post(
            "/v1/evidence/plain-requests", json={"address": PATIENT, "evidence": "twice"}, headers=auth
        )
        assert again.status_code == 409

    plain = world.send(world.clinic)
    assert SECRET.encode() in world.received(2)
    method, reason = world.method(plain)
    assert method == "plain" and "patient-requested plain" in reason and request["id"] in reason
    assert "carried without TLS" in reason

    # Another tenant, and a look-alike address at the same tenant, get nothing from it.
    other = world.send(world.other)
    assert SECRET.encode() not in world.received(3) and world.method(other)[0] == "portal"
    look_alike = world.send(world.clinic, "pat+x@home.example")
    assert SECRET.encode() not in world.received(4) and world.method(look_alike)[0] == "portal"

    with TestClient(create_api(world.services)) as http:
        other_auth = {"Authorization": f"Bearer {world.other.api_key}"}
        assert (
            http.post(f"/v1/evidence/plain-requests/{request['id']}/revoke", headers=other_auth).status_code
            == 404
        )
        revoked = http.post(
            f"/v1/evidence/plain-requests/{request['id']}/revoke",
            json={"reason": "patient called"},
            headers=auth,
        )
        assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
        after = world.send(world.clinic)
        assert SECRET.encode() not in world.received(5) and world.method(after)[0] == "portal"
        register = http.get(
            "/v1/evidence/reports/plain_register",
            params={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
            headers=auth,
        )
        assert register.status_code == 200
        steps = [line.split(",")[3] for line in register.text.strip().splitlines()[1:]]
        assert steps == ["requested", "warned", "confirmed", "revoked"]
        assert "signed request form" in register.text
        secured = http.get(
            "/v1/evidence/reports/secured",
            params={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
            headers=auth,
        )
        assert "patient-requested plain (no TLS)" in secured.text


def test_portal_path_needs_the_warning_before_the_confirmation(world: World) -> None:
    register = world.services.evidence.plain
    request = register.request(world.clinic.id, PATIENT, "portal:pat", "portal")
    assert request.state == "warned"
    assert request.steps[1].warning_sha256
    confirmed = register.confirm(world.clinic.id, request.id, "portal:pat", "portal")
    assert confirmed.state == "confirmed"
    with pytest.raises(Conflict):
        register.confirm(world.clinic.id, request.id, "portal:pat", "portal")
    with pytest.raises(InvalidRequest):
        register.request(world.clinic.id, "not an address", "x", "portal")
    assert world.services.evidence.plain.confirmed(world.other.id, [PATIENT]) == {}
    assert PATIENT in world.services.evidence.plain.confirmed(world.clinic.id, [PATIENT.upper()])


def test_cli_records_lists_and_revokes(world: World) -> None:
    from tests.integration.evidence.harness import cli_env
    from typer.testing import CliRunner

    from sealmail.cli import app as sealmail_cli

    runner = CliRunner()
    env = cli_env(world.services)
    base = ["evidence", "plain"]
    tenant = ["--tenant", world.clinic.id]
    missing = runner.invoke(sealmail_cli, [*base, "record", PATIENT, *tenant], env=env)
    assert missing.exit_code == 2  # --evidence is required
    made = runner.invoke(
        sealmail_cli, [*base, "record", PATIENT, "--evidence", "call note 17", *tenant], env=env
    )
    assert made.exit_code == 0 and '"confirmed"' in made.output, made.output
    [request] = world.services.evidence.plain.requests(world.clinic.id)
    revoked = runner.invoke(
        sealmail_cli, [*base, "revoke", request.id, "--reason", "asked", *tenant], env=env
    )
    assert revoked.exit_code == 0 and '"revoked"' in revoked.output, revoked.output
    assert world.services.evidence.plain.confirmed(world.clinic.id, [PATIENT]) == {}
