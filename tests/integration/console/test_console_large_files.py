"""Large files in compose over real HTTP on SQLite and PostgreSQL: the file streams in as a raw
body, sealed as it arrives and capped by ``max_file_bytes``; the message then carries a portal
link instead of the file and goes through the portal; someone else's file, a resent file and a
forged upload are refused."""

from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from tests.conftest import TenantFixture, make_settings
from tests.integration.console.console_harness import Console, Person, csrf, person
from tests.integration.console.test_console_compose import compose

from sealmail.app import Services
from sealmail.config import Settings
from sealmail.domain.tags import SystemTag
from sealmail.files.tables import file_shares
from sealmail.store.tables import audit_log
from sealmail.users.roles import Role

LIMIT = 300_000


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(
        tmp_path, db_url, max_file_bytes=LIMIT, portal_base_url="https://portal.clinic.example"
    )


def upload(who: Person, name: str, data: bytes, token: str | None = None) -> httpx.Response:
    token = token if token is not None else csrf(who.http.get("/console/compose"))
    headers = {
        "Content-Type": "application/octet-stream",
        "X-CSRF-Token": token,
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        "X-File-Content-Type": "application/pdf",
    }
    return who.http.post("/console/compose/files", content=data, headers=headers)


def test_a_large_file_goes_as_a_portal_link_and_is_tied_to_its_message(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    data = b"%PDF-1.4 " + bytes(range(256)) * 1000  # about 256 KB, several network reads
    up = upload(alice, "MRI scan – Jane.pdf", data)
    assert up.status_code == 201, up.text
    file_id = up.json()["id"]
    assert up.json()["filename"] == "MRI scan – Jane.pdf" and up.json()["size"] == len(data)
    r = compose(alice, to="pat@example.net", large_files=file_id)
    assert r.status_code == 303, r.text
    mid = r.headers["location"].rsplit("/", 1)[1]

    detail = services.messages.get(tenant.principal, mid)
    assert SystemTag.FILE_SHARE in detail.tags and detail.metadata["file_ids"] == file_id
    body = services.messages.content(tenant.principal, mid)
    assert f"https://portal.clinic.example/p/files/{file_id}" in (body.text or "")
    assert body.attachments == () and "MRI" not in (body.text or "")  # the name stays in the portal
    assert services.file_shares.describe(tenant.id, file_id).message_id == mid
    with services.engine.connect() as conn:
        sent = conn.execute(
            sa.select(audit_log.c.actor).where(
                audit_log.c.action == "file:sent", audit_log.c.target == file_id
            )
        ).scalar_one()
    assert sent.startswith("user:")
    # Carried once: sending the same file again is refused, and nothing new is stored.
    again = compose(alice, to="pat@example.net", large_files=file_id)
    assert again.status_code == 409 and "already sent" in again.text


def test_uploads_are_capped_forged_or_foreign_ones_refused(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    bob = person(console, tenant.id, "bob@clinic.example", Role.SENDER)
    assert upload(alice, "big.bin", b"x" * (LIMIT + 1)).status_code == 413
    assert upload(alice, "scan.pdf", b"data", token="forged").status_code == 403
    form = alice.http.post("/console/compose/files", data={"csrf": "x"})
    assert form.status_code == 400  # a multipart/form post never spools a file here
    nameless = upload(alice, "", b"data")
    assert nameless.status_code == 400
    with services.engine.connect() as conn:
        statuses = set(conn.execute(sa.select(file_shares.c.status)).scalars())
    assert statuses <= {"deleted"}  # the refused upload left no ready file behind

    bobs = upload(bob, "bob.pdf", b"bob's file").json()["id"]
    r = compose(alice, to="pat@example.net", large_files=bobs)
    assert r.status_code == 404 and "not found" in r.text
    assert services.file_shares.describe(tenant.id, bobs).message_id is None
    ids = [upload(alice, f"f{i}.pdf", b"d").json()["id"] for i in range(6)]
    page = alice.http.get("/console/compose")
    data = {"csrf": csrf(page), "from": alice.email, "to": "pat@example.net", "subject": "S", "text": "T",
            "html": "", "protection": "secure"}  # fmt: skip
    too_many = alice.http.post(
        "/console/compose",
        data={**data, "large_files": ids},
        files=[("attachments", ("", b"", "application/octet-stream"))],
    )
    assert too_many.status_code == 400 and "at most 5 files" in too_many.text
