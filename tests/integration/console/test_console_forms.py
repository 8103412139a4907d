"""The forms pages of the console over real HTTP on SQLite and PostgreSQL: list, edit with
a server-rendered preview, version history, submissions search, CSV export and the audited
read of one submission's answers."""

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, console_server, csrf, enrol

from sealmail.app import Services
from sealmail.audit import AuditAction
from sealmail.forms.tables import form_submissions
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

TOKEN = re.compile(r'name="_token" value="([^"]+)"')
ANSWER = "Chest pain after running"


@pytest.fixture
def console(services: Services) -> Iterator[Console]:
    with console_server(services) as c:
        yield c


def definition(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "Intake",
        "recipients": ["intake@clinic.example"],
        "sender": "forms@clinic.example",
        "min_fill_seconds": 0,
        "fields": [
            {"name": "full_name", "label": "Full name", "type": "text", "required": True},
            {"name": "reason", "label": "Reason for the visit", "type": "textarea", "required": True},
        ],
    }
    body.update(over)
    return body


def person(console: Console, tenant: TenantFixture, role: Role) -> Person:
    email = f"{role}-forms@clinic.example"
    _, token = console.users.invite(tenant.id, email, "", role, actor="test")
    return enrol(console, token, email)


def submit(console: Console, form_id: str, **values: str) -> None:
    with console.client() as c:
        page = c.get(f"/f/{form_id}")
        hit = TOKEN.search(page.text)
        assert hit, page.text
        r = c.post(f"/f/{form_id}", data={"_token": hit.group(1), **values}, files={"x": ("", b"")})
        assert r.status_code == 303, r.text


def test_a_form_is_created_previewed_versioned_and_listed(console: Console, tenant: TenantFixture) -> None:
    admin = person(console, tenant, Role.ADMINISTRATOR)
    page = admin.http.get("/console/forms/new")
    assert page.status_code == 200 and 'name="definition"' in page.text
    token = csrf(page)
    body = json.dumps(definition(fields=[{"name": "q", "label": "<b>Allergies</b>", "type": "text"}]))
    shown = admin.http.post("/console/forms", data={"csrf": token, "definition": body, "action": "preview"})
    # The preview is the hosted page's own field markup, escaped, and nothing is saved.
    assert shown.status_code == 200 and 'id="preview"' in shown.text
    assert (
        'name="q"' in shown.text and "&lt;b&gt;Allergies" in shown.text and "<b>Allergies" not in shown.text
    )
    assert "No forms yet" in admin.http.get("/console/forms").text
    bad = admin.http.post(
        "/console/forms", data={"csrf": token, "definition": '{"title": 1', "action": "save"}
    )
    assert bad.status_code == 422 and 'id="problems"' in bad.text
    unverified = json.dumps(definition(sender="x@unverified.example"))
    refused = admin.http.post(
        "/console/forms", data={"csrf": token, "definition": unverified, "action": "save"}
    )
    assert refused.status_code == 422 and "sender" in refused.text
    made = admin.http.post("/console/forms", data={"csrf": token, "definition": json.dumps(definition())})
    assert made.status_code == 303, made.text
    where = made.headers["location"]
    form_id = where.rsplit("/", 1)[1]
    v2 = json.dumps(definition(title="Intake v2"))
    assert admin.http.post(where, data={"csrf": token, "definition": v2}).status_code == 303
    one = admin.http.get(where)
    assert one.status_code == 200 and "Intake v2" in one.text and 'name="reason"' in one.text
    assert one.text.count(f'href="/console/forms/{form_id}?version=') == 2
    old = admin.http.get(where + "?version=1").text
    assert "version 1 of 2" in old and "&#34;title&#34;: &#34;Intake&#34;," in old
    assert f'href="/console/forms/{form_id}"' in admin.http.get("/console/forms").text
    # One script, the console's own file: no inline script, and the CSP allows no other.
    scripts = re.findall(r"<script[^>]*>", one.text)
    assert scripts == ['<script src="/console/static/forms.js" defer>']
    csp = one.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    served = admin.http.get("/console/static/forms.js")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/javascript")
    assert "eval(" not in served.text and "innerHTML" not in served.text.replace("no innerHTML", "")


def test_submissions_are_searched_exported_safely_and_read_with_an_audit(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    h = {"Authorization": f"Bearer {tenant.api_key}"}
    with console.client() as c:
        r = c.post("/v1/forms", json=definition(), headers=h)
        assert r.status_code == 201, r.text
        form_id = r.json()["id"]
    submit(console, form_id, full_name="=HYPERLINK(1)", reason=ANSWER)
    submit(console, form_id, full_name="Pat", reason="second")
    admin = person(console, tenant, Role.ADMINISTRATOR)
    listing = admin.http.get(f"/console/submissions?form={form_id}")
    assert listing.status_code == 200 and listing.text.count("fsub_") >= 2
    # Facts only: an administrator lacks content.read, so no answers and no read links.
    assert ANSWER not in listing.text and 'href="/console/submissions/fsub_' not in listing.text
    assert "No submissions match" in admin.http.get("/console/submissions?status=held").text
    assert "No submissions match" in admin.http.get("/console/submissions?since=2999-01-01").text
    exported = admin.http.get(f"/console/submissions/export.csv?form={form_id}")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert (
        rows[0][0] == "id"
        and len(rows) == 3
        and ANSWER not in exported.text
        and "HYPERLINK" not in exported.text
    )
    sid = rows[1][0]
    # A hold reason comes from outside (a DLP rule's text): a spreadsheet must not run it.
    with services.engine.begin() as conn:
        conn.execute(
            sa.update(form_submissions)
            .where(form_submissions.c.id == sid)
            .values(status="held", status_reason='=HYPERLINK("http://x.example")')
        )
    held = admin.http.get("/console/submissions/export.csv?status=held")
    [_, row] = list(csv.reader(io.StringIO(held.text)))
    assert row[0] == sid and row[5] == '\'=HYPERLINK("http://x.example")'
    assert admin.http.get(f"/console/submissions/{sid}").status_code == 403
    owner = person(console, tenant, Role.OWNER)
    assert f'href="/console/submissions/{sid}"' in owner.http.get("/console/submissions").text
    read = owner.http.get(f"/console/submissions/{sid}")
    assert read.status_code == 200 and ("second" in read.text or ANSWER in read.text)
    with services.engine.connect() as conn:
        reads = conn.execute(
            sa.select(audit_log.c.actor).where(
                audit_log.c.action == AuditAction.FORM_SUBMISSION_READ, audit_log.c.target == sid
            )
        ).all()
    assert len(reads) == 1
    sender = person(console, tenant, Role.SENDER)  # content.read, but not forms.manage
    assert sender.http.get(f"/console/submissions/{sid}").status_code == 403
    assert owner.http.get("/console/submissions/fsub_nope").status_code == 404
