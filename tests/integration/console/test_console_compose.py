"""Compose over real HTTP on SQLite and PostgreSQL: a sender's secure message with an
attachment, its outcome page, ownership (a sender sees only their own), audited content
reads, and refusals that re-show the form instead of storing anything."""

import sqlalchemy as sa
from tests.conftest import TenantFixture
from tests.integration.console.console_harness import Console, Person, csrf, person

from sealmail.app import Services
from sealmail.store.tables import audit_log, messages
from sealmail.users.roles import Role


def compose(who: Person, files: list[tuple[str, tuple[str, bytes, str]]] | None = None, **fields: str):  # type: ignore[no-untyped-def]
    page = who.http.get("/console/compose")
    assert page.status_code == 200, page.text
    data = {"csrf": csrf(page), "from": who.email, "to": "pat@example.net", "subject": "Your results",
            "text": "Please call us.", "html": "", "protection": "secure", **fields}  # fmt: skip
    return who.http.post(
        "/console/compose", data=data, files=files or [("attachments", ("", b"", "application/octet-stream"))]
    )


def stored(services: Services) -> list[sa.Row]:  # type: ignore[type-arg]
    with services.engine.connect() as conn:
        return list(conn.execute(sa.select(messages.c.id, messages.c.actor, messages.c.protection)).all())


def test_a_sender_sends_securely_sees_each_recipients_outcome_and_only_their_own(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    assert "go to <strong>alice@clinic.example</strong>" in alice.http.get("/console/compose").text
    services.tenancy.update_settings(tenant.id, {"reply_mailbox": "desk@clinic.example"}, actor="test")
    assert "go to <strong>desk@clinic.example</strong>" in alice.http.get("/console/compose").text
    files = [("attachments", ("lab.pdf", b"%PDF-1.4 results", "application/pdf"))]
    r = compose(alice, files, to="pat@example.net, kin@example.org",
                html='<p>Please <b>call</b> us.<script>alert(1)</script></p>')  # fmt: skip
    assert r.status_code == 303, r.text
    mid = r.headers["location"].rsplit("/", 1)[1]
    assert r.headers["location"] == f"/console/sent/{mid}"
    [row] = stored(services)
    assert row.id == mid and row.protection == "secure" and row.actor.startswith("user:")
    outcome = alice.http.get(f"/console/sent/{mid}")
    assert outcome.status_code == 200
    assert (
        'data-recipient="pat@example.net"' in outcome.text
        and 'data-recipient="kin@example.org"' in outcome.text
    )
    assert 'id="message-status">queued<' in outcome.text
    assert mid in alice.http.get("/console/sent").text
    # The content as sent: attachment kept, script removed, and the read is audited.
    content = alice.http.get(f"/console/content/{mid}")
    assert content.status_code == 200 and "Your results" in content.text and "lab.pdf" in content.text
    full = services.messages.content(tenant.principal, mid)
    assert "<b>call</b>" in (full.html or "") and "script" not in (full.html or "")
    with services.engine.connect() as conn:
        reads = (
            conn.execute(
                sa.select(audit_log.c.actor).where(
                    audit_log.c.action == "message:content_read", audit_log.c.target == mid
                )
            )
            .scalars()
            .all()
        )
    assert row.actor in reads
    # Another sender: not in their list, and neither trail nor content opens.
    bob = person(console, tenant.id, "bob@clinic.example", Role.SENDER)
    assert mid not in bob.http.get("/console/sent").text
    assert bob.http.get(f"/console/sent/{mid}").status_code == 404
    assert bob.http.get(f"/console/content/{mid}").status_code == 404
    # Support sees the trail but not the content; compliance neither.
    support = person(console, tenant.id, "help@clinic.example", Role.SUPPORT)
    assert support.http.get(f"/console/content/{mid}").status_code == 403
    assert mid in support.http.get("/console/messages", params={"q": mid}).text
    trail = support.http.get("/console/messages", params={"q": mid}).text
    assert "Your results" not in trail and f"/console/content/{mid}" not in trail
    owner = person(console, tenant.id, "boss@clinic.example", Role.OWNER)
    assert f"/console/content/{mid}" in owner.http.get("/console/messages", params={"q": mid}).text
    assert "Your results" in owner.http.get(f"/console/content/{mid}").text


def test_refusals_show_the_form_again_and_store_nothing(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    no_rcpt = compose(alice, to="")
    assert no_rcpt.status_code == 400 and 'id="compose-errors"' in no_rcpt.text
    bad = compose(alice, to="not an address")
    assert bad.status_code == 400 and "Your results" in bad.text  # the draft is kept
    foreign = compose(alice, **{"from": "someone@unverified.example"})
    assert foreign.status_code in (400, 403) and 'id="compose-errors"' in foreign.text
    big = [("attachments", ("big.bin", b"x" * (21 * 1024 * 1024), "application/octet-stream"))]
    assert compose(alice, big).status_code == 413
    page = alice.http.get("/console/compose")
    form = {"csrf": "0" * 64, "to": "pat@example.net", "text": "x"}
    forged = alice.http.post(
        "/console/compose", data=form, files=[("attachments", ("a", b"a", "text/plain"))]
    )
    assert forged.status_code == 403 and csrf(page)
    assert stored(services) == []


def test_a_message_sent_with_a_key_the_user_made_is_theirs_too(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    owner = person(console, tenant.id, "boss@clinic.example", Role.OWNER)
    page = owner.http.get("/console/keys")
    made = owner.http.post("/console/keys", data={"csrf": csrf(page), "name": "ehr", "scope_send": "on"})
    secret = made.text.split('id="new-key">', 1)[1].split("<", 1)[0]
    body = {"from": "boss@clinic.example", "to": ["pat@example.net"], "text": "Hello", "protection": "secure"}
    r = console.client().post("/v1/messages", json=body, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 202, r.text
    assert r.json()["id"] in owner.http.get("/console/sent").text


def test_the_portal_notice_choice_is_checked_and_kept_per_recipient(
    console: Console, services: Services, tenant: TenantFixture
) -> None:
    """ "By text message only" needs the recipient's SMS contact with notice consent: without
    it the form comes back naming the address; with it every recipient row keeps "sms"."""
    from sealmail.store.tables import recipients

    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    assert 'name="notice" value="sms"' in alice.http.get("/console/compose").text
    refused = compose(alice, notice="sms")
    assert refused.status_code == 400
    assert "notice.pat@example.net: no SMS contact has this address" in refused.text
    assert stored(services) == []
    services.texting.add_sender(tenant.id, "+14155550100", "test")
    services.texting.put_contact(
        tenant.id, "+14155550123", time_zone="UTC", address="pat@example.net", notice="email",
        consents={"notice": True}, actor="test",
    )  # fmt: skip
    sent = compose(alice, notice="sms")
    assert sent.status_code == 303, sent.text
    with services.engine.connect() as conn:
        kept = conn.execute(sa.select(recipients.c.address, recipients.c.notice)).all()
    assert [tuple(r) for r in kept] == [("pat@example.net", "sms")]
    plain = compose(alice, notice="email")
    assert plain.status_code == 303
    with services.engine.connect() as conn:
        notices = conn.execute(sa.select(recipients.c.notice).order_by(recipients.c.id)).scalars().all()
    assert notices == ["sms", None]  # email: no SMS choice recorded, the contact's own applies


def test_a_chunked_upload_is_told_to_declare_its_length(console: Console, tenant: TenantFixture) -> None:
    """A form body is bounded by its Content-Length before it is parsed; a chunked one has
    none, so it is refused with 411 and what to do, not a misleading "too large"."""
    alice = person(console, tenant.id, "alice@clinic.example", Role.SENDER)
    token = csrf(alice.http.get("/console/compose"))

    def body():  # type: ignore[no-untyped-def]
        yield b'--b\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n'
        yield token.encode() + b"\r\n--b--\r\n"

    for path in ("/console/compose", "/console/marketing/contacts/import"):
        r = alice.http.post(path, content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"})
        assert r.status_code == 411, (path, r.status_code, r.text[:300])
        assert "Content-Length" in r.text
