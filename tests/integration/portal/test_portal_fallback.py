"""Issue 11.1: what crosses a STARTTLS-stripped path in clear never opens a portal message.

The patient's domain ``victim.example`` has a real MX (a loopback sink with a certificate
from the test CA), but its MX name resolves to a STARTTLS-stripping relay
(``tests/support/starttls_stripper.py``) that records everything crossing it.  The phi
message cannot go (verified TLS required), so SecureLine sends the PHI-free notice below
the level; the attacker then plays the recipient with only what the relay captured.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import CODE, LINK, Stack, portal_stack
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer
from tests.support.smtp_sink import SmtpSink
from tests.support.starttls_stripper import StartTlsStripper
from tests.support.waiting import wait_until

from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.store.tables import audit_log, destination_tls, messages, recipients
from sealmail.web import security

VICTIM = "pat@victim.example"
STRONG = "pat@strong.example"
SECRET = ("Your lab results from March", "potassium")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


@dataclass
class World:
    stack: Stack
    stripper: StartTlsStripper
    victim_mx: SmtpSink
    strong_mx: SmtpSink

    def clear_text(self) -> str:
        """What a passive observer on the victim's path read, soft line breaks undone."""
        return self.stripper.captured.replace(b"=\r\n", b"").decode("latin-1")

    def events(self, mid: str, type_: str) -> list[dict[str, Any]]:
        data = self.stack.services.messages.list_events(self.stack.tenant.principal, message_id=mid).data
        return [e for e in data if e["type"] == type_]

    def notice_facts(self, mid: str) -> dict[str, Any]:
        with self.stack.api() as api:
            r = api.get("/v1/portal/messages", params={"message_id": mid})
        assert r.status_code == 200, r.text
        notice = r.json()["recipients"][0]["notice"]
        assert notice is not None
        return dict(notice)


@pytest.fixture
def world(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[World]:
    with portal_stack(tmp_path, db_url, dns, ca, mx) as stack:
        # The strict default (the harness loosens it for its reading tests).
        stack.services.tenancy.update_settings(stack.tenant.id, {"secureline": None}, actor="test")
        sinks = mx.start(
            {
                "127.0.0.6": {"cert": ca.issue("mx.victim.example")},
                "127.0.0.8": {"cert": ca.issue("mx.strong.example")},
            }
        )
        dns.add("victim.example", "MX", "10 mx.victim.example.")
        dns.add("mx.victim.example", "A", "127.0.0.7")  # the attacker's relay, not the MX
        dns.add("strong.example", "MX", "10 mx.strong.example.")
        dns.add("mx.strong.example", "A", "127.0.0.8")
        with StartTlsStripper("127.0.0.7", mx.port, ("127.0.0.6", mx.port)) as stripper:
            yield World(stack, stripper, sinks["127.0.0.6"], sinks["127.0.0.8"])


def _csrf(page: httpx.Response) -> str:
    hit = CSRF.search(page.text)
    assert hit, page.text
    return hit.group(1)


def _own_csrf(client: httpx.Client) -> str:
    return security.csrf_token(client.cookies[security.CookieNames.for_(False).challenge])


def _captured_link(world: World, mid: str) -> str:
    world.stack.run_worker()
    wait_until(
        lambda: LINK.search(world.clear_text().encode()) is not None, 10, "no notice crossed the relay"
    )
    hit = LINK.search(world.clear_text().encode())
    assert hit
    return hit.group(1).decode()


def _opened(page: httpx.Response) -> bool:
    return any(s in page.text for s in SECRET)


def test_only_what_crossed_in_clear_cannot_open_the_message(world: World) -> None:
    mid = world.stack.send(to=[VICTIM])
    link = _captured_link(world, mid)
    assert not any(s in world.clear_text() for s in SECRET), "the message itself crossed in clear"
    assert "STARTTLS" not in world.clear_text(), "the relay did not strip STARTTLS"
    with httpx.Client(base_url=world.stack.base_url, verify=default_context()) as attacker:
        page = attacker.get(link, follow_redirects=True)
        assert page.status_code == 200, page.text
        # The attacker asks for a code even without the button (the form token derives from
        # the attacker's own cookie) and reads whatever crosses the relay afterwards.
        token = _own_csrf(attacker)
        asked = attacker.post("/p/signin/code", data={"csrf": token}, follow_redirects=True)
        world.stack.run_worker()
        codes = CODE.findall(world.clear_text())
        for code in codes:
            attacker.post("/p/signin/verify", data={"csrf": token, "code": code}, follow_redirects=True)
        inbox = attacker.get("/p/inbox", follow_redirects=True)
        assert not _opened(inbox), "the captured link and code opened the message"
        assert codes == [], "a sign-in code crossed the stripped path in clear"
        assert 'id="send-code"' not in page.text and 'id="no-code"' in page.text
        assert "We cannot email you a code" in asked.text
    assert "sign-in code" not in world.clear_text()
    assert all(b"sign-in code" not in m.data for m in world.victim_mx.messages)
    facts = world.notice_facts(mid)
    assert facts == {
        "channel": "email",
        "required_tls": "require_verified",
        "tls_version": None,
        "verified_by": "none",
        "meets_required": False,
    }
    [delivered] = world.events(mid, "message.delivered")
    assert delivered["data"]["portal_notice"]["meets_required"] is False
    assert delivered["data"]["transport"]["tls"]["version"] is None
    [refused] = world.events(mid, "portal.code_refused")
    assert refused["data"]["channel"] == "email" and refused["data"]["reason"] == "tls_required"
    PortalLifecycle(world.stack.services.engine, PasswordHasher(time_cost=1, memory_cost=64)).sweep()
    [notified] = world.events(mid, "portal.notified")
    assert notified["data"]["notice"] == facts


def test_a_code_mail_that_cannot_meet_the_level_is_deferred_and_the_page_says_so(world: World) -> None:
    mid = world.stack.send(to=[VICTIM])
    link = _captured_link(world, mid)
    with world.stack.services.engine.begin() as conn:
        # As after the capability aged out: the portal no longer knows the path fails.
        conn.execute(sa.delete(destination_tls))
    with httpx.Client(base_url=world.stack.base_url, verify=default_context()) as client:
        page = client.get(link, follow_redirects=True)
        assert 'id="send-code"' in page.text
        sent = client.post("/p/signin/code", data={"csrf": _csrf(page)}, follow_redirects=True)
        assert "We sent a code" in sent.text
        world.stack.run_worker()
        again = client.get("/p/signin")
        assert 'id="no-code"' in again.text
    assert CODE.findall(world.clear_text()) == []
    with world.stack.services.engine.connect() as conn:
        code_rcpt = conn.execute(
            sa.select(recipients.c.status, recipients.c.last_reason)
            .join(messages, messages.c.id == recipients.c.message_id)
            .where(messages.c.source == "portal")
        ).one()
    assert tuple(code_rcpt) == ("deferred", "tls_required")
    [sent_event] = world.events(mid, "portal.code_sent")
    assert sent_event["data"]["tls_policy"] == "require_verified"


def test_the_sender_set_passphrase_opens_a_message_whose_notice_went_in_clear(world: World) -> None:
    mid = world.stack.send(to=[VICTIM])
    with world.stack.api() as api:
        r = api.patch(f"/v1/messages/{mid}/portal", json={"passphrase": "told by phone 4417"})
        assert r.status_code == 200, r.text
    link = _captured_link(world, mid)
    with httpx.Client(base_url=world.stack.base_url, verify=default_context()) as client:
        page = client.get(link, follow_redirects=True)
        opened = client.post(
            "/p/signin/passphrase",
            data={"csrf": _csrf(page), "passphrase": "told by phone 4417"},
            follow_redirects=True,
        )
        assert _opened(opened), opened.text


def test_a_destination_meeting_the_level_gets_the_code_by_mail_as_before(world: World) -> None:
    world.stack.services.tenancy.update_settings(
        world.stack.tenant.id, {"secureline": {"force_portal": True}}, actor="test"
    )
    mid = world.stack.send(to=[STRONG])
    world.stack.run_worker()
    [notice] = world.strong_mx.wait_for(1)
    link = LINK.search(notice.data.replace(b"=\r\n", b""))
    assert link and notice.tls
    assert world.notice_facts(mid)["meets_required"] is True
    assert world.notice_facts(mid)["verified_by"] == "pkix"
    with httpx.Client(base_url=world.stack.base_url, verify=default_context()) as client:
        page = client.get(link.group(1).decode(), follow_redirects=True)
        asked = client.post("/p/signin/code", data={"csrf": _csrf(page)}, follow_redirects=True)
        world.stack.run_worker()
        [_, code_mail] = world.strong_mx.wait_for(2)
        assert code_mail.tls, "the code mail must meet the level too"
        code = CODE.search(code_mail.data.decode())
        assert code
        opened = client.post(
            "/p/signin/verify", data={"csrf": _csrf(asked), "code": code.group(1)}, follow_redirects=True
        )
        assert _opened(opened), opened.text
    [sent_event] = world.events(mid, "portal.code_sent")
    assert sent_event["data"]["tls_policy"] == "require_verified"
    assert sent_event["data"]["notice_strength"] == "meets"


def test_loosening_is_explicit_and_audited(world: World) -> None:
    with world.stack.api() as api:
        loosen = {"secureline": {"portal_weak_notice": "allow_email_code"}}
        assert api.patch("/v1/tenant/policy", json=loosen).status_code == 422  # no reason given
        why = "Patients without a phone need the emailed code; accepted by the privacy officer."
        r = api.patch("/v1/tenant/policy", json={**loosen, "reason": why})
        assert r.status_code == 200, r.text
        bad = api.patch("/v1/tenant/policy", json={"secureline": {"portal_weak_notice": "anything"}})
        assert bad.status_code == 422
    with world.stack.services.engine.connect() as conn:
        [details] = conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == "portal:weak_notice_policy_changed")
        ).scalars()
    assert details == {"before": "require_strong_factor", "after": "allow_email_code", "loosened": True}
    # The trade-off the tenant accepted: the code now crosses the stripped path too.
    mid = world.stack.send(to=[VICTIM])
    link = _captured_link(world, mid)
    with httpx.Client(base_url=world.stack.base_url, verify=default_context()) as client:
        page = client.get(link, follow_redirects=True)
        client.post("/p/signin/code", data={"csrf": _csrf(page)})
        world.stack.run_worker()
    wait_until(lambda: CODE.search(world.clear_text()) is not None, 10, "the loosened code mail did not go")
