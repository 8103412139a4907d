"""Find a message by sender, recipient status and day over real HTTP on SQLite and
PostgreSQL, alone or with an address; never by content, and only in the tenant."""

from datetime import UTC, datetime, timedelta

from tests.conftest import TenantFixture, make_tenant
from tests.integration.console.console_harness import Console, person

from sealmail.app import Services
from sealmail.users.roles import Role


def send(console: Console, key: str, **over: object) -> str:
    body = {
        "from": "results@clinic.example",
        "to": ["pat@example.net"],
        "subject": "Secret",
        "text": "x",
        **over,
    }
    r = console.client().post("/v1/messages", json=body, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_find_narrows_by_sender_status_and_day(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    console.client().patch("/v1/tenant/policy", json={"dlp": {"actions": {"ssn": "quarantine"}}}, headers=h)
    results = send(console, tenant.api_key)
    billing = send(console, tenant.api_key, **{"from": "billing@clinic.example", "to": ["kin@example.org"]})
    held = send(console, tenant.api_key, text="SSN 123-45-6780")
    other = make_tenant(services, "Other", "other.example")
    foreign = send(console, other.api_key, **{"from": "results@other.example"})
    support = person(console, tenant.id, "help@clinic.example", Role.SUPPORT)

    def found(**params: str) -> set[str]:
        page = support.http.get("/console/messages", params=params)
        assert page.status_code == 200, page.text
        return {m for m in (results, billing, held, foreign) if f"Message {m}" in page.text}

    assert found(sender="billing@clinic.example") == {billing}
    assert found(sender="Results@Clinic.example") == {results, held}
    assert found(status="quarantined") == {held}
    today = datetime.now(UTC).date()
    assert found(since=today.isoformat(), until=today.isoformat()) == {results, billing, held}
    assert found(until=(today - timedelta(days=1)).isoformat()) == set()
    assert found(q="pat@example.net", status="queued") == {results}
    assert found(q="Secret") == set()  # subjects are not searchable
    assert "No message matches." in support.http.get("/console/messages", params={"q": "Secret"}).text
    assert support.http.get("/console/messages", params={"since": "not-a-day"}).status_code == 400
    # What a browser sends for untouched fields: empty values are no filter.
    blank = {"q": "pat@example.net", "sender": "", "status": "", "since": "", "until": ""}
    assert found(**blank) == {results, held}
