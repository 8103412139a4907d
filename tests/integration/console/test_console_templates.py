"""Templates in the console over real HTTP on SQLite and PostgreSQL: the list, the source,
and a sandboxed preview with sample variables (escaped, missing variables reported)."""

from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, csrf, enrol

from sealmail.app import Services
from sealmail.users.roles import Role


def test_a_template_is_previewed_in_the_sandbox(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    body = {"name": "appointment", "subject": "See you {{ day }}",
            "html": "<p>Dear {{ name }}, your visit is on <b>{{ day }}</b>.</p>"}  # fmt: skip
    assert console.client().post("/v1/templates", json=body, headers=h).status_code == 201
    _, token = console.users.invite(tenant.id, "alice@clinic.example", "", Role.SENDER, actor="test")
    alice = enrol(console, token, "alice@clinic.example")
    assert 'href="/console/templates/appointment"' in alice.http.get("/console/templates").text
    page = alice.http.get("/console/templates/appointment")
    assert page.status_code == 200 and "See you {{ day }}" in page.text
    data = '{"name": "<script>x</script>Pat", "day": "Monday"}'
    shown = alice.http.post("/console/templates/appointment/preview", data={"csrf": csrf(page), "data": data})
    assert shown.status_code == 200, shown.text
    assert 'id="preview-subject">See you Monday<' in shown.text
    assert "<b>Monday</b>" in shown.text and "<script>x" not in shown.text
    missing = alice.http.post(
        "/console/templates/appointment/preview", data={"csrf": csrf(page), "data": "{}"}
    )
    assert missing.status_code == 400 and 'id="preview-error"' in missing.text and "day" in missing.text
    bad = alice.http.post("/console/templates/appointment/preview", data={"csrf": csrf(page), "data": "[1"})
    assert bad.status_code == 400 and "not valid JSON" in bad.text
    assert alice.http.get("/console/templates/nope").status_code == 404
    _, token = console.users.invite(tenant.id, "co@clinic.example", "", Role.COMPLIANCE, actor="test")
    assert enrol(console, token, "co@clinic.example").http.get("/console/templates").status_code == 403
