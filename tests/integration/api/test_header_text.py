"""Hostile text on every path from the API into a generated header, on SQLite and PostgreSQL.

``str.splitlines`` (which ``email.header`` folds at) ends a line at VT, FF, FS–RS, NEL,
U+2028 and U+2029 as well as CR and LF.  Each of those in a subject, a display name, a
custom header or an attachment's file name is a 422 naming the field, with nothing stored;
before, some were a 500 (the stdlib builder raising, or a file share's subject and sender
reaching the builder unchecked) and the rest depended on which builder path the message
took.  A right-to-left override in an attachment's name (``invoice<U+202E>fdp.exe``) is
refused too: the recipient's mail client would show ``invoiceexe.pdf``.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.conftest import TenantFixture

from sealmail.app import Services
from sealmail.errors import ValidationFailed
from sealmail.files.tables import file_shares
from sealmail.intake.api.app import create_api
from sealmail.store.tables import events, messages, recipients

# One character from each kind of line break a parser on the way might honour.
BREAKS = ["\x0b", "\x1e", "\x85", "\u2028", "\u2029"]
ATTACHMENT = {"filename": "a.txt", "content_type": "text/plain", "content": "eA=="}


@pytest.fixture
def client(services: Services) -> TestClient:
    return TestClient(create_api(services), raise_server_exceptions=False)


def auth(t: TenantFixture) -> dict[str, str]:
    return {"Authorization": f"Bearer {t.api_key}"}


def message(field: str, text: str, utf8: bool) -> dict[str, Any]:
    """A message whose ``field`` carries ``text``; ``utf8`` takes the stdlib builder's path
    (an attachment, a UTF-8 local part) rather than the direct one."""
    body: dict[str, Any] = {
        "from": "Clinic <noreply@clinic.example>",
        "to": ["pätient@example.net" if utf8 else "patient@example.net"],
        "subject": "Results",
        "text": "Hello",
        "attachments": [ATTACHMENT] if utf8 else [],
    }
    if field == "subject":
        body["subject"] = f"x{text}X-Injected: yes"
    elif field == "from":
        body["from"] = f'"Dr{text}X-Injected: yes" <noreply@clinic.example>'
    elif field in ("to", "cc", "reply_to"):
        body[field] = [f'"Pat{text}X-Injected: yes" <other@example.net>']
    elif field == "headers":
        body["headers"] = {"X-Note": f"x{text}X-Injected: yes"}
    else:
        body["attachments"] = [{**ATTACHMENT, "filename": f"a{text}X-Injected: yes.txt"}]
    return body


def count(services: Services, table: sa.Table) -> int:
    with services.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


@pytest.mark.parametrize("field", ["subject", "from", "to", "cc", "reply_to", "headers", "attachments"])
def test_a_line_break_in_any_header_text_is_a_422_naming_the_field_on_both_builder_paths(
    client: TestClient, services: Services, tenant: TenantFixture, field: str
) -> None:
    for utf8 in (False, True):
        for text in BREAKS:
            r = client.post("/v1/messages", json=message(field, text, utf8), headers=auth(tenant))
            assert r.status_code == 422, (field, repr(text), utf8, r.text[:300])
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["errors"][0]["field"].startswith(field), r.json()
    assert (count(services, messages), count(services, recipients), count(services, events)) == (0, 0, 0)


@pytest.mark.parametrize("name", ["invoice\u202efdp.exe", "scan\u2066.pdf", ".."])
def test_a_spoofing_or_climbing_attachment_name_is_refused(
    client: TestClient, services: Services, tenant: TenantFixture, name: str
) -> None:
    body = message("subject", "", utf8=False) | {"subject": "Results"}
    body["attachments"] = [{**ATTACHMENT, "filename": name}]
    r = client.post("/v1/messages", json=body, headers=auth(tenant))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "attachments[0].filename"
    assert count(services, messages) == 0


def test_a_file_shares_subject_and_addresses_are_422s_and_the_file_stays_unsent(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    up = client.post(
        "/v1/files",
        content=b"%PDF-1.4 scan",
        headers={
            **auth(tenant),
            "Content-Type": "application/octet-stream",
            "Content-Disposition": "attachment; filename=scan.pdf",
        },
    )
    assert up.status_code == 201, up.text
    send = f"/v1/files/{up.json()['id']}/send"
    good = {"from": "noreply@clinic.example", "to": ["patient@example.net"], "subject": "Your scan"}
    hostile = [
        ({"subject": "Scan\r\nBcc: someone@evil.example"}, "subject"),
        ({"subject": "Scan\u2028X-Injected: yes"}, "subject"),
        ({"from": "not an address"}, "from"),
        ({"from": '"Dr\x0bX-Injected: yes" <noreply@clinic.example>'}, "from"),
        ({"to": ["patient@example.net", "nobody"]}, "to[1]"),
    ]
    for change, field in hostile:
        r = client.post(send, json=good | change, headers=auth(tenant))
        assert r.status_code == 422, (change, r.text[:300])
        assert r.json()["errors"][0]["field"] == field
    assert count(services, messages) == 0
    with services.engine.connect() as conn:
        assert conn.execute(sa.select(file_shares.c.message_id)).scalar_one() is None
    assert client.post(send, json=good, headers=auth(tenant)).status_code == 202


def test_a_forms_title_with_a_line_break_is_refused_when_the_form_is_defined(
    client: TestClient, tenant: TenantFixture
) -> None:
    # The title is in the Subject of every delivered submission: refused at definition,
    # not found out by the delivery of each submission.
    form = {
        "title": "Intake\u2028X-Injected: yes",
        "recipients": ["intake@clinic.example"],
        "sender": "forms@clinic.example",
        "fields": [{"name": "full_name", "label": "Full name", "type": "text"}],
    }
    r = client.post("/v1/forms", json=form, headers=auth(tenant))
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "title"


def test_a_portal_notice_subject_with_a_line_break_is_refused_and_the_policy_unchanged(
    client: TestClient, services: Services, tenant: TenantFixture
) -> None:
    # The Subject of every portal notice the tenant sends: a CR or LF in it made each
    # notice's build raise in the worker, long after the 200.
    for text in ["Secure\r\nBcc: someone@evil.example", "Secure\u2028X-Injected: yes"]:
        body = {"secureline": {"portal_subject": text}}
        r = client.patch("/v1/tenant/policy", json=body, headers=auth(tenant))
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "secureline.portal_subject"
    assert "portal_subject" not in services.tenancy.get_tenant(tenant.id).settings.get("secureline", {})


def test_a_tenant_name_with_a_line_break_is_refused(services: Services) -> None:
    # The name is the display name of the portal's sign-in code mail and of delivered form
    # submissions; the builder would refuse each of those mails instead.
    before = len(services.tenancy.list_tenants())
    for name in ("Riverside\u2028Clinic", "Riverside\x85Clinic", "Riverside\r\nBcc: x@evil.example"):
        with pytest.raises(ValidationFailed) as refused:
            services.tenancy.create_tenant(name, actor="test")
        assert refused.value.extra["errors"][0]["field"] == "name"
    assert len(services.tenancy.list_tenants()) == before
