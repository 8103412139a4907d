"""The compliance officer's evidence pages: holds and plain-mail requests placed through
the console's forms (CSRF, audited with the person's id), reports and the pack downloaded;
an auditor reads but cannot change anything."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

import pytest
from pypdf import PdfReader
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, console_server, csrf, invite_as

from sealmail.app import Services
from sealmail.users.roles import Role


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def _person(console: Console, tenant: TenantFixture, role: Role) -> Person:
    return invite_as(console, tenant.id, role)


def test_officer_places_a_hold_records_a_request_and_downloads(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    officer = _person(console, tenant, Role.COMPLIANCE)
    page = officer.http.get("/console/evidence")
    assert page.status_code == 200 and 'id="plain-warning"' in page.text
    token = csrf(page)
    held = officer.http.post(
        "/console/evidence/holds",
        data={"csrf": token, "scope": "recipient", "target": "Pat@Home.example", "reason": "matter 12"},
    )
    assert held.status_code == 303, held.text
    recorded = officer.http.post(
        "/console/evidence/plain",
        data={"csrf": token, "address": "pat@home.example", "evidence": "form in chart"},
    )
    assert recorded.status_code == 303, recorded.text
    short = officer.http.post(
        "/console/evidence/retention",
        data={"csrf": token, "content_days": "30", "metadata_days": "30", "audit_days": "30"},
    )
    assert short.status_code == 422 and "six-year floor" in short.text
    forged = officer.http.post(
        "/console/evidence/holds", data={"csrf": "x", "scope": "tenant", "reason": "x"}
    )
    assert forged.status_code == 403

    [hold] = services.evidence.retention.holds(tenant.id)
    assert hold.target == "pat@home.example" and hold.created_by.startswith("user:")
    [request] = services.evidence.plain.requests(tenant.id)
    assert request.state == "confirmed" and request.steps[-1].evidence == "form in chart"

    again = officer.http.get("/console/evidence")
    assert "matter 12" in again.text and "pat@home.example" in again.text
    pdf = officer.http.get(
        "/console/evidence/reports/plain_register",
        params={"since": "2000-01-01", "until": "2100-01-01", "format": "pdf"},
    )
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "pat@home.example" in text and "confirmed" in text
    pack = officer.http.get("/console/evidence/pack", params={"period": "2026"})
    assert pack.status_code == 200 and "manifest.json" in zipfile.ZipFile(io.BytesIO(pack.content)).namelist()


@pytest.mark.hipaa("164.522(b)")
def test_officer_records_and_revokes_a_communication_preference(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    officer = _person(console, tenant, Role.COMPLIANCE)
    page = officer.http.get("/console/evidence")
    assert page.status_code == 200 and 'action="/console/evidence/preferences"' in page.text
    token = csrf(page)
    no_alternative = officer.http.post(
        "/console/evidence/preferences",
        data={"csrf": token, "address": "pat@home.example", "kind": "redirect", "evidence": "call note"},
    )
    assert no_alternative.status_code == 400 and "alternative" in no_alternative.text
    made = officer.http.post(
        "/console/evidence/preferences",
        data={
            "csrf": token,
            "address": "Pat@Home.example",
            "kind": "redirect",
            "alternative": "pat@work.example",
            "evidence": "call note 4",
        },
    )
    assert made.status_code == 303, made.text
    forged = officer.http.post(
        "/console/evidence/preferences",
        data={"csrf": "x", "address": "a@b.example", "kind": "no_sms", "evidence": "x"},
    )
    assert forged.status_code == 403
    [pref] = services.evidence.preferences.preferences(tenant.id)
    assert pref.alternative == "pat@work.example" and pref.steps[0].actor.startswith("user:")
    shown = officer.http.get("/console/evidence")
    assert "pat@work.example" in shown.text and "call note 4" in shown.text
    revoked = officer.http.post(f"/console/evidence/preferences/{pref.id}/revoke", data={"csrf": token})
    assert revoked.status_code == 303
    assert services.evidence.preferences.standing(tenant.id, ["pat@home.example"]) == {}
    auditor = _person(console, tenant, Role.AUDITOR)
    refused = auditor.http.post(
        f"/console/evidence/preferences/{pref.id}/revoke",
        data={"csrf": csrf(auditor.http.get("/console/evidence"))},
    )
    assert refused.status_code == 403


def test_auditor_reads_but_cannot_change(console: Console, tenant: TenantFixture) -> None:
    auditor = _person(console, tenant, Role.AUDITOR)
    page = auditor.http.get("/console/evidence")
    assert page.status_code == 200 and 'action="/console/evidence/holds"' not in page.text
    refused = auditor.http.post(
        "/console/evidence/holds", data={"csrf": csrf(page), "scope": "tenant", "reason": "x"}
    )
    assert refused.status_code == 403
    sender = _person(console, tenant, Role.SENDER)
    assert sender.http.get("/console/evidence").status_code == 403
