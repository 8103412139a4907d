"""The console's contact pages over real HTTP: attribute declarations, CSV import in the
background with its progress and error report, export by role, a contact's page (masked
attributes, consent by purpose, the ledger, grant / revoke, HIPAA authorizations) and lists.

Each state-changing form is refused without its CSRF token, another tenant's ids are 404,
and values a contact or a file brought (markup, bidi overrides) render inert."""

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, console_server, csrf, enrol
from tests.integration.marketing.conftest import Keys
from tests.integration.marketing.test_marketing_consent import authorization
from tests.support.waiting import wait_until

from sealmail.app import Services
from sealmail.marketing.tables import mkt_imports
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

HOSTILE = "<img src=x onerror=alert(1)>\u202egnp.exe"


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def person(console: Console, tenant: TenantFixture, role: Role, domain: str = "clinic.example") -> Person:
    email = f"{role}@{domain}"
    _, token = console.users.invite(tenant.id, email, str(role), role, actor="test")
    return enrol(console, token, email)


def actors_of(services: Services, action: str) -> list[str]:
    with services.engine.connect() as conn:
        return [a for (a,) in conn.execute(sa.select(audit_log.c.actor).where(audit_log.c.action == action))]


def save(client: TestClient, keys: Keys, body: dict[str, object]) -> str:
    r = client.post("/v1/marketing/contacts", json=body, headers=keys.admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_attributes_are_declared_by_administrators_with_errors_in_the_page(
    console: Console, tenant: TenantFixture, declared: Keys, services: Services
) -> None:
    sender, admin = person(console, tenant, Role.SENDER), person(console, tenant, Role.ADMINISTRATOR)
    seen = sender.http.get("/console/marketing/attributes")
    assert seen.status_code == 200 and "hiv_status" in seen.text and "sensitive" in seen.text
    assert "Declare an attribute" not in seen.text
    refused = sender.http.post(
        "/console/marketing/attributes",
        data={"csrf": csrf(seen), "name": "x", "type": "text", "phi_class": "none"},
    )
    assert refused.status_code == 403
    page = admin.http.get("/console/marketing/attributes")
    forged = admin.http.post(
        "/console/marketing/attributes",
        data={"csrf": "0" * 64, "name": "x", "type": "text", "phi_class": "none"},
    )
    assert forged.status_code == 403
    bad = admin.http.post(
        "/console/marketing/attributes",
        data={"csrf": csrf(page), "name": "Bad Name<b>", "type": "choice", "phi_class": "secret"},
    )
    assert bad.status_code == 422 and 'id="problems"' in bad.text
    assert "name: use a-z" in bad.text and "phi_class: use one of" in bad.text and "choices:" in bad.text
    assert "Bad Name&lt;b&gt;" in bad.text and "<b>" not in bad.text  # the entry is kept, escaped
    again = admin.http.post(
        "/console/marketing/attributes",
        data={"csrf": csrf(page), "name": "city", "type": "text", "phi_class": "none"},
    )
    assert again.status_code == 409
    done = admin.http.post(
        "/console/marketing/attributes",
        data={
            "csrf": csrf(page),
            "name": "language",
            "type": "choice",
            "phi_class": "demographic",
            "choices": "en\r\nes\r\n",
        },
    )
    assert done.status_code == 303
    listed = admin.http.get("/console/marketing/attributes").text
    assert "<code>language</code>" in listed and "en, es" in listed
    assert any(a.startswith("user:") for a in actors_of(services, "mkt_attribute:defined"))


def test_a_csv_import_runs_in_the_background_with_progress_and_a_paged_error_report(
    console: Console, tenant: TenantFixture, declared: Keys, services: Services, other_tenant: TenantFixture
) -> None:
    rows = "".join(
        f"p{i}@example.net,{'old' if i % 2 else 30},{HOSTILE if i == 0 else 'Austin'}\r\n" for i in range(130)
    )
    body = ("email,age,city\r\n" + rows).encode()
    sender = person(console, tenant, Role.SENDER)
    form = sender.http.get("/console/marketing/contacts/import")
    assert form.status_code == 200 and "<code>hiv_status</code>" in form.text
    upload = {"file": ("patients.csv", body, "text/csv")}
    forged = sender.http.post("/console/marketing/contacts/import", data={"csrf": "0" * 64}, files=upload)
    assert forged.status_code == 403
    started = sender.http.post("/console/marketing/contacts/import", data={"csrf": csrf(form)}, files=upload)
    assert started.status_code == 303, started.text
    where = started.headers["location"].removeprefix("/console")
    assert re.fullmatch(r"/marketing/imports/imp_[A-Za-z0-9_-]+", where), where
    assert "patients" not in where and "example.net" not in where

    def page_says_done() -> bool:
        return 'id="import-state">completed<' in sender.http.get(f"/console{where}").text

    wait_until(page_says_done, 60, "the import page never said completed")
    page = sender.http.get(f"/console{where}")
    assert "Finished: 130 rows." in page.text and 'http-equiv="refresh"' not in page.text
    assert 'id="import-failed">65<' in page.text
    assert "Problems 1–50 of 65" in page.text and "More problems" in page.text
    second = sender.http.get(f"/console{where}?offset=50")
    assert "Problems 51–65 of 65" in second.text and "Previous problems" in second.text
    assert sender.http.get(f"/console{where}?offset=-9&x=1").status_code == 200  # clamped, never a 500
    report = sender.http.get(f"/console{where}/errors.csv")
    assert report.status_code == 200 and report.text.splitlines()[0] == "row,column,message"
    assert len(report.text.splitlines()) == 66 and "old" not in report.text
    stranger = person(console, other_tenant, Role.OWNER, domain="other.example")
    assert stranger.http.get(f"/console{where}").status_code == 404
    assert stranger.http.get(f"/console{where}/errors.csv").status_code == 404
    # The hostile city was imported as text and is shown inert on the contact list.
    listed = sender.http.get("/console/marketing/contacts").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in listed or "&lt;img" in listed
    assert "<img" not in listed


def test_export_leaves_out_the_classes_a_role_may_not_see_and_is_audited(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    save(
        client,
        declared,
        {
            "email": "pat@example.net",
            "attributes": {"city": "Austin", "diagnosis": "asthma", "hiv_status": "positive"},
        },
    )
    sender, compliance = person(console, tenant, Role.SENDER), person(console, tenant, Role.COMPLIANCE)
    narrow = sender.http.get("/console/marketing/contacts/export.csv")
    assert narrow.status_code == 200 and narrow.headers["content-type"].startswith("text/csv")
    header = narrow.text.splitlines()[0].split(",")
    assert "city" in header and "diagnosis" not in header and "hiv_status" not in header
    assert "asthma" not in narrow.text and "positive" not in narrow.text
    full = compliance.http.get("/console/marketing/contacts/export.csv").text
    assert "diagnosis" in full.splitlines()[0] and "positive" in full
    assert sum(a.startswith("user:") for a in actors_of(services, "mkt_contacts:exported")) == 2
    support = person(console, tenant, Role.SUPPORT)
    assert support.http.get("/console/marketing/contacts/export.csv").status_code == 403


def test_a_contact_page_masks_what_the_role_may_not_see_and_renders_hostile_values_inert(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, other_tenant: TenantFixture
) -> None:
    cid = save(
        client,
        declared,
        {
            "email": "pat@example.net",
            "attributes": {"city": HOSTILE, "diagnosis": "asthma", "hiv_status": "positive"},
        },
    )
    sender, compliance = person(console, tenant, Role.SENDER), person(console, tenant, Role.COMPLIANCE)
    page = sender.http.get(f"/console/marketing/contacts/{cid}")
    assert page.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt;gnp.exe" in page.text
    assert "<img" not in page.text and "\u202e" not in page.text
    assert "asthma" not in page.text and "positive" not in page.text
    assert (
        "(sensitive: not shown to your role)" in page.text
        and "(clinical: not shown to your role)" in page.text
    )
    full = compliance.http.get(f"/console/marketing/contacts/{cid}").text
    assert "asthma" in full and "positive" in full and "not shown to your role" not in full
    stranger = person(console, other_tenant, Role.OWNER, domain="other.example")
    assert stranger.http.get(f"/console/marketing/contacts/{cid}").status_code == 404
    other_page = stranger.http.get("/console/marketing/attributes")
    refused = stranger.http.post(
        f"/console/marketing/contacts/{cid}/consent",
        data={"csrf": csrf(other_page), "purpose": "marketing", "channel": "email", "action": "revoke"},
    )
    assert refused.status_code == 404
    assert sender.http.get("/console/marketing/contacts/nope").status_code == 404


def test_consent_is_granted_by_senders_revoked_by_anyone_with_the_pages_and_kept_in_the_ledger(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    cid = save(client, declared, {"email": "pat@example.net"})
    sender, compliance = person(console, tenant, Role.SENDER), person(console, tenant, Role.COMPLIANCE)
    page = sender.http.get(f"/console/marketing/contacts/{cid}")
    grant = {"csrf": csrf(page), "purpose": "marketing", "channel": "email", "action": "grant"}
    assert (
        sender.http.post(
            f"/console/marketing/contacts/{cid}/consent", data={**grant, "csrf": "0" * 64}
        ).status_code
        == 403
    )
    assert sender.http.post(f"/console/marketing/contacts/{cid}/consent", data=grant).status_code == 303
    theirs = compliance.http.get(f"/console/marketing/contacts/{cid}")
    assert 'aria-label="Grant' not in theirs.text  # not a sender: no grant buttons
    no_grant = compliance.http.post(
        f"/console/marketing/contacts/{cid}/consent",
        data={**grant, "csrf": csrf(theirs), "purpose": "fundraising"},
    )
    assert no_grant.status_code == 403
    bad = compliance.http.post(
        f"/console/marketing/contacts/{cid}/consent",
        data={"csrf": csrf(theirs), "purpose": "gossip", "channel": "email", "action": "revoke"},
    )
    assert (
        bad.status_code == 422 and 'id="consent-problems"' in bad.text and "purpose: use one of" in bad.text
    )
    revoked = compliance.http.post(
        f"/console/marketing/contacts/{cid}/consent",
        data={
            "csrf": csrf(theirs),
            "purpose": "marketing",
            "channel": "email",
            "action": "revoke",
            "evidence": "call <b>4711</b>",
        },
    )
    assert revoked.status_code == 303
    after = compliance.http.get(f"/console/marketing/contacts/{cid}").text
    row = re.search(r'id="consent-marketing-email">(.*?)</tr>', after, re.S)
    assert row and '<td class="state">revoked</td>' in row.group(1)
    ledger = after[after.index('id="ledger"') :]
    assert ledger.index("grant") < ledger.index("revoke")  # oldest first, both kept
    assert "call &lt;b&gt;4711&lt;/b&gt;" in ledger
    api = client.get(f"/v1/marketing/contacts/{cid}/consent", headers=declared.reader).json()
    assert [h["action"] for h in api["history"]] == ["grant", "revoke"]
    assert all(h["source"] == "staff" and h["actor"].startswith("user:") for h in api["history"])


def test_a_hipaa_authorization_is_checked_like_the_api_with_the_problems_in_the_page(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys
) -> None:
    cid = save(client, declared, {"email": "pat@example.net"})
    sender = person(console, tenant, Role.SENDER)
    page = sender.http.get(f"/console/marketing/contacts/{cid}")
    today = datetime.now(UTC).date()
    incomplete = {
        "csrf": csrf(page),
        "purpose": "marketing",
        "information": "Visit history",
        "signed_at": today.isoformat(),
        "expires_at": (today - timedelta(days=2)).isoformat(),
        "statements": ["right_to_revoke"],
        "remuneration": "on",
        "document_sha256": "xyz",
    }
    bad = sender.http.post(f"/console/marketing/contacts/{cid}/authorizations", data=incomplete)
    assert bad.status_code == 422 and 'id="auth-problems"' in bad.text
    for text in (
        "disclosed_by: is a required element",
        "statements: missing conditioning, redisclosure",
        "expires_at: is in the past",
        "remuneration_statement: must state the remuneration",
        "document_sha256:",
    ):
        assert text in bad.text, text
    assert "Visit history" in bad.text  # what was typed stays in the form
    complete = {
        **incomplete,
        "disclosed_by": "Clinic",
        "disclosed_to": "Clinic marketing",
        "purpose_statement": "Flu shot reminders",
        "signed_by": "Pat",
        "expires_at": (today + timedelta(days=365)).isoformat(),
        "statements": ["right_to_revoke", "conditioning", "redisclosure"],
        "remuneration_statement": "Sponsored by a vaccine maker",
    }
    complete.pop("document_sha256")
    done = sender.http.post(
        f"/console/marketing/contacts/{cid}/authorizations",
        data=complete,
        files={"document": ("signed.pdf", b"%PDF-1.4 signed", "application/pdf")},
    )
    assert done.status_code == 303, done.text
    after = sender.http.get(f"/console/marketing/contacts/{cid}").text
    row = re.search(r'id="consent-marketing-email">(.*?)</tr>', after, re.S)
    assert row and '<td class="state">authorized</td>' in row.group(1)
    assert "<td>authorize</td>" in after[after.index('id="ledger"') :]


def test_the_contact_page_lists_each_stored_authorization_with_its_elements_escaped_and_audited(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, other_tenant: TenantFixture,
    services: Services,
) -> None:  # fmt: skip
    cid = save(client, declared, {"email": "pat@example.net"})
    compliance = person(console, tenant, Role.COMPLIANCE)  # sees the page, may not record one
    empty = compliance.http.get(f"/console/marketing/contacts/{cid}").text
    assert 'id="no-authorizations"' in empty and "Record a HIPAA" not in empty
    body = authorization(
        information=HOSTILE, remuneration=True, remuneration_statement="Paid by <script>x</script>"
    )
    made = client.post(f"/v1/marketing/contacts/{cid}/authorizations", json=body, headers=declared.sender)
    assert made.status_code == 201, made.text
    aid = made.json()["id"]

    page = compliance.http.get(f"/console/marketing/contacts/{cid}")

    assert page.status_code == 200
    card = page.text[page.text.index(f'id="auth-{aid}"') :]
    card = card[: card.index("</article>")]
    assert '<span class="state">active</span>' in card
    for text in (
        "&lt;img src=x onerror=alert(1)&gt;gnp.exe",
        "Riverside Clinic marketing office",
        "Mailings about our diabetes education program",
        "Pat Doe",
        "yes: <bdi>Paid by &lt;script&gt;x&lt;/script&gt;</bdi>",
        body["document_sha256"],
        "Treatment or payment is not conditioned on signing",
        "not revoked",
    ):
        assert text in card, text
    assert "<img" not in page.text and "<script>x" not in page.text and "\u202e" not in page.text
    readers = actors_of(services, "mkt_authorization:read")  # the empty page, then this one
    assert len(readers) == 2 and all(a.startswith("user:") for a in readers), readers
    # Revoked by the compliance officer: the page says so.
    revoke = {"csrf": csrf(page), "purpose": "marketing", "channel": "email", "action": "revoke"}
    assert compliance.http.post(f"/console/marketing/contacts/{cid}/consent", data=revoke).status_code == 303
    after = compliance.http.get(f"/console/marketing/contacts/{cid}").text
    assert '<span class="state">revoked</span>' in after and "not revoked" not in after
    stranger = person(console, other_tenant, Role.OWNER, domain="other.example")
    assert stranger.http.get(f"/console/marketing/contacts/{cid}").status_code == 404


def test_lists_are_created_filled_by_email_and_emptied_with_their_counts(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, other_tenant: TenantFixture
) -> None:
    ids = [save(client, declared, {"email": f"m{i}@example.net"}) for i in range(3)]
    sender = person(console, tenant, Role.SENDER)
    page = sender.http.get("/console/marketing/lists")
    assert page.status_code == 200 and "No lists yet." in page.text
    assert (
        sender.http.post("/console/marketing/lists", data={"csrf": "0" * 64, "name": "x"}).status_code == 403
    )
    made = sender.http.post("/console/marketing/lists", data={"csrf": csrf(page), "name": "Flu <2026>"})
    assert made.status_code == 303
    where = made.headers["location"].removeprefix("/console")
    twice = sender.http.post("/console/marketing/lists", data={"csrf": csrf(page), "name": "Flu <2026>"})
    assert twice.status_code == 409 and 'id="problems"' in twice.text
    one = sender.http.get(f"/console{where}")
    assert "List <bdi>Flu &lt;2026&gt;</bdi>" in one.text and "0 members." in one.text
    added = sender.http.post(
        f"/console{where}/members",
        data={
            "csrf": csrf(one),
            "emails": "m0@example.net\nM1@Example.net\nnobody@example.net\nnot an address",
        },
    )
    assert added.status_code == 200 and "2 added. 2 addresses are not contacts" in added.text
    assert "2 members." in added.text and "m0@example.net" in added.text
    removed = sender.http.post(
        f"/console{where}/members/remove", data={"csrf": csrf(one), "contact_id": ids[0]}
    )
    assert removed.status_code == 303
    listed = sender.http.get("/console/marketing/lists").text
    assert re.search(r"Flu &lt;2026&gt;</bdi></a></td><td class=\"num\">1<", listed)
    stranger = person(console, other_tenant, Role.OWNER, domain="other.example")
    assert stranger.http.get(f"/console{where}").status_code == 404
    theirs = stranger.http.get("/console/marketing/lists")
    assert (
        stranger.http.post(
            f"/console{where}/members/remove", data={"csrf": csrf(theirs), "contact_id": ids[1]}
        ).status_code
        == 404
    )
    compliance = person(console, tenant, Role.COMPLIANCE)
    seen = compliance.http.get(f"/console{where}")
    assert seen.status_code == 200 and "Add to list" not in seen.text
    assert (
        compliance.http.post(
            f"/console{where}/members", data={"csrf": csrf(seen), "emails": "m2@example.net"}
        ).status_code
        == 403
    )


def test_signed_out_visitors_are_sent_to_sign_in(console: Console) -> None:
    with httpx.Client(base_url=console.url, follow_redirects=False) as anon:
        for path in (
            "/console/marketing/attributes",
            "/console/marketing/lists",
            "/console/marketing/contacts/export.csv",
        ):
            assert anon.get(path).status_code == 303, path


def test_an_import_whose_process_stopped_is_shown_interrupted_and_the_page_stops_refreshing(
    console: Console, tenant: TenantFixture, client: TestClient, declared: Keys, services: Services
) -> None:
    # What a process killed mid-import leaves: a processing import that no chunk moves.
    import_id, _ = services.marketing.importer._begin(tenant.id, "test", 5000)
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(mkt_imports)
            .where(mkt_imports.c.id == import_id)
            .values(rows=1000, progress_at=datetime.now(UTC) - timedelta(minutes=6))
        )
    got = client.get(f"/v1/marketing/imports/{import_id}", headers=declared.reader).json()
    assert (
        got["status"] == "processing"
        and got["stalled"] is True
        and (got["rows"], got["total"]) == (1000, 5000)
    )
    sender = person(console, tenant, Role.SENDER)
    page = sender.http.get(f"/console/marketing/imports/{import_id}")
    assert 'id="import-state">interrupted<' in page.text and "import the file again" in page.text
    assert 'http-equiv="refresh"' not in page.text
    fresh, _ = services.marketing.importer._begin(tenant.id, "test", 10)
    running = sender.http.get(f"/console/marketing/imports/{fresh}")
    assert 'http-equiv="refresh"' in running.text and "This page refreshes itself." in running.text
