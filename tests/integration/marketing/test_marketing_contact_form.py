"""The console's form to add one contact, or edit one, over real HTTP: the API's write and
checks (``Contacts.save``), its audit entry, CSRF, the role to write, write-only classes,
problems in the page with nothing stored, tenant isolation and hostile values shown inert."""

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, console_server, csrf
from tests.integration.marketing.conftest import Keys
from tests.integration.marketing.test_marketing_contact_console import actors_of, person

from sealmail.app import Services
from sealmail.marketing.tables import mkt_contacts
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

NEW = "/console/marketing/contacts/new"


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def contacts(services: Services) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(mkt_contacts)).scalar_one())


def saved_details(services: Services) -> list[dict[str, object]]:
    with services.engine.connect() as conn:
        q = sa.select(audit_log.c.details).where(audit_log.c.action == "mkt_contact:saved")
        return [d for (d,) in conn.execute(q.order_by(audit_log.c.id))]


def test_a_sender_adds_a_contact_that_is_listed_audited_and_read_back_by_the_api(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    sender = person(console, tenant, Role.SENDER)
    listing = sender.http.get("/console/marketing/contacts")
    assert f'href="{NEW}"' in listing.text
    form = sender.http.get(NEW)
    assert form.status_code == 200 and 'name="attributes.city"' in form.text
    # Clinical and sensitive fields are offered write-only to a role that cannot see them.
    assert 'id="c-attr-diagnosis-hint"' in form.text and "Write-only" in form.text
    made = sender.http.post(
        NEW,
        data={
            "csrf": csrf(form), "email": " Pat.Doe@Example.net ", "phone": "+1 415 555 0123",
            "tz": "America/Chicago", "status": "", "attributes.city": "Austin", "attributes.age": "42",
            "attributes.plan": "gold", "attributes.smoker": "false", "attributes.diagnosis": "asthma",
            "attributes.hiv_status": "", "attributes.recall_due": "",
        },
    )  # fmt: skip
    assert made.status_code == 303, made.text
    where = made.headers["location"].removeprefix("/console")
    m = re.fullmatch(r"/marketing/contacts/(ctc_[A-Za-z0-9_-]+)\?saved=added", where)
    assert m, where
    cid = m.group(1)
    page = sender.http.get(f"/console{where}")
    assert "Contact added." in page.text and "pat.doe@example.net" in page.text
    assert "+14155550123" in page.text and "Austin" in page.text
    assert "asthma" not in page.text  # written, but not shown to a sender
    api = client.get(f"/v1/marketing/contacts/{cid}", headers=declared.admin).json()
    assert api["email"] == "pat.doe@example.net" and api["tz"] == "America/Chicago"
    assert api["attributes"] == {
        "age": 42, "city": "Austin", "diagnosis": "asthma", "plan": "gold", "smoker": False,
    }  # fmt: skip
    actors = actors_of(services, "mkt_contact:saved")
    assert len(actors) == 1 and actors[0].startswith("user:"), actors
    assert saved_details(services) == [
        {"created": True, "attributes": ["age", "city", "diagnosis", "plan", "smoker"]}
    ]
    assert "pat.doe@example.net" in sender.http.get("/console/marketing/contacts").text

    # The same address again updates that contact, as the API does, and the page says so.
    again = sender.http.post(
        NEW, data={"csrf": csrf(form), "email": "PAT.DOE@example.net", "attributes.city": "Waco"}
    )
    assert again.status_code == 303
    assert again.headers["location"] == f"/console/marketing/contacts/{cid}?saved=updated"
    assert contacts(services) == 1
    after = client.get(f"/v1/marketing/contacts/{cid}", headers=declared.admin).json()
    assert after["attributes"]["city"] == "Waco" and after["attributes"]["diagnosis"] == "asthma"
    assert after["phone"] == "+14155550123"  # blank fields left the contact as it was
    assert "already a contact" in sender.http.get(again.headers["location"]).text


def test_without_csrf_or_the_right_to_write_nothing_is_stored(
    console: Console, tenant: TenantFixture, declared: Keys, services: Services
) -> None:
    sender, compliance = person(console, tenant, Role.SENDER), person(console, tenant, Role.COMPLIANCE)
    form = sender.http.get(NEW)
    forged = sender.http.post(NEW, data={"csrf": "0" * 64, "email": "a@example.net"})
    assert forged.status_code == 403
    missing = sender.http.post(NEW, data={"email": "a@example.net"})
    assert missing.status_code == 403
    # A compliance officer sees the contacts but may not write them: no link, no form, 403.
    seen = compliance.http.get("/console/marketing/contacts")
    assert seen.status_code == 200 and f'href="{NEW}"' not in seen.text
    assert compliance.http.get(NEW).status_code == 403
    token = csrf(compliance.http.get("/console/marketing/attributes"))  # a page with a form
    refused = compliance.http.post(NEW, data={"csrf": token, "email": "a@example.net"})
    assert refused.status_code == 403
    support = person(console, tenant, Role.SUPPORT)
    assert support.http.get(NEW).status_code == 403
    assert contacts(services) == 0 and saved_details(services) == []
    assert csrf(form)  # the sender's own form did carry a token


def test_problems_are_shown_in_the_form_with_the_entries_kept_and_nothing_stored(
    console: Console, tenant: TenantFixture, declared: Keys, services: Services
) -> None:
    sender = person(console, tenant, Role.SENDER)
    form = sender.http.get(NEW)
    bad = sender.http.post(
        NEW,
        data={
            "csrf": csrf(form), "email": "not an address", "phone": "12", "tz": "Mars/Olympus",
            "attributes.age": "old", "attributes.city": "Austin", "attributes.diagnosis": "asthma",
        },
    )  # fmt: skip
    assert bad.status_code == 422 and 'id="problems"' in bad.text
    said = ("email:", "phone: must be a valid number", "tz: must be an IANA", "attributes.age: must be a")
    assert [t for t in said if t not in bad.text] == [], bad.text
    assert 'value="not an address"' in bad.text and 'value="Austin"' in bad.text
    assert "asthma" not in bad.text  # a write-only value is not echoed back
    long = sender.http.post(NEW, data={"csrf": csrf(form), "email": "x" * 400 + "@example.net"})
    assert long.status_code == 422 and "email: String should have at most 320 characters" in long.text
    assert "x" * 400 not in long.text.split('id="problems"')[1].split("</div>")[0]
    too_long = sender.http.post(
        NEW, data={"csrf": csrf(form), "email": "ok@example.net", "attributes.city": "y" * 1500}
    )
    assert too_long.status_code == 422 and "attributes.city: must be at most 500 characters" in too_long.text
    wrong_status = sender.http.post(
        NEW, data={"csrf": csrf(form), "email": "ok@example.net", "status": "vip"}
    )
    assert wrong_status.status_code == 422 and "status:" in wrong_status.text
    nul = sender.http.post(
        NEW, data={"csrf": csrf(form), "email": "ok@example.net", "attributes.city": "a\x00b"}
    )
    assert nul.status_code == 400
    assert contacts(services) == 0 and saved_details(services) == []


def test_hostile_values_are_stored_as_text_and_shown_inert(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys
) -> None:
    sender = person(console, tenant, Role.SENDER)
    form = sender.http.get(NEW)
    hostile = "<img src=x onerror=alert(1)>\u202egnp.exe"
    made = sender.http.post(
        NEW, data={"csrf": csrf(form), "email": "h@example.net", "attributes.city": hostile}
    )
    assert made.status_code == 303
    for path in (made.headers["location"], "/console/marketing/contacts"):
        page = sender.http.get(path)
        assert page.status_code == 200
        assert "&lt;img src=x onerror=alert(1)&gt;gnp.exe" in page.text, path
        assert "<img" not in page.text and "\u202e" not in page.text, path
    # Stored as typed (the API reads it back whole); the edit form holds it escaped, so
    # saving the form again does not change it.
    cid = made.headers["location"].split("/")[-1].split("?")[0]
    assert client.get(f"/v1/marketing/contacts/{cid}", headers=declared.admin).json()["attributes"] == {
        "city": hostile
    }
    edit = sender.http.get(f"/console/marketing/contacts/{cid}/edit")
    assert 'value="&lt;img src=x onerror=alert(1)&gt;' in edit.text and "<img" not in edit.text


def test_an_edit_changes_the_visible_fields_keeps_write_only_ones_and_stays_in_the_tenant(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, other_tenant: TenantFixture,
    services: Services,
) -> None:  # fmt: skip
    made = client.post(
        "/v1/marketing/contacts",
        json={"email": "pat@example.net", "phone": "+14155550123",
              "attributes": {"city": "Austin", "age": 40, "diagnosis": "asthma", "hiv_status": "negative"}},
        headers=declared.admin,
    )  # fmt: skip
    cid = made.json()["id"]
    sender = person(console, tenant, Role.SENDER)
    page = sender.http.get(f"/console/marketing/contacts/{cid}")
    assert f'href="/console/marketing/contacts/{cid}/edit"' in page.text
    form = sender.http.get(f"/console/marketing/contacts/{cid}/edit")
    assert form.status_code == 200 and 'value="Austin"' in form.text and 'value="40"' in form.text
    assert "asthma" not in form.text and 'value="negative" selected' not in form.text  # write-only
    edit = f"/console/marketing/contacts/{cid}/edit"
    done = sender.http.post(
        edit,
        data={
            "csrf": csrf(form), "email": "someone-else@example.net", "phone": "", "tz": "", "status": "",
            "attributes.city": "Waco", "attributes.age": "", "attributes.diagnosis": "",
            "attributes.hiv_status": "",
        },
    )  # fmt: skip
    assert (
        done.status_code == 303
        and done.headers["location"] == f"/console/marketing/contacts/{cid}?saved=changed"
    )
    got = client.get(f"/v1/marketing/contacts/{cid}", headers=declared.admin).json()
    assert got["email"] == "pat@example.net" and got["phone"] == "+14155550123"  # address kept
    assert got["attributes"] == {"city": "Waco", "diagnosis": "asthma", "hiv_status": "negative"}
    assert contacts(services) == 1
    bad = sender.http.post(edit, data={"csrf": csrf(form), "attributes.age": "many"})
    assert (
        bad.status_code == 422
        and "attributes.age: must be a number" in bad.text
        and "Edit contact" in bad.text
    )
    # Another tenant's owner: the contact is not found, neither to read nor to write.
    stranger = person(console, other_tenant, Role.OWNER, domain="other.example")
    theirs = stranger.http.get(NEW)
    assert stranger.http.get(edit).status_code == 404
    assert stranger.http.post(edit, data={"csrf": csrf(theirs), "attributes.city": "X"}).status_code == 404
    assert "pat@example.net" not in stranger.http.get("/console/marketing/contacts").text
    # The stranger's own form writes in the stranger's tenant only.
    own = stranger.http.post(NEW, data={"csrf": csrf(theirs), "email": "pat@example.net"})
    assert own.status_code == 303
    assert contacts(services) == 2
    ours = client.get(f"/v1/marketing/contacts/{cid}", headers=declared.admin).json()
    assert ours["attributes"]["city"] == "Waco"
