"""The patient asks in the portal for regular e-mail (164.524(c)(2)): the request, the
warning and the confirmation are registered, and the next message reaches the patient's
mailbox itself instead of as a portal notice; withdrawing turns it back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.integration.delivery.conftest import MxFarm
from tests.integration.portal.portal_harness import PATIENT, Stack, portal_stack
from tests.integration.portal.test_portal_http import sign_in
from tests.support.ca import TestCA
from tests.support.client_tls import default_context
from tests.support.dns_server import DnsServer

from sealmail.evidence.plain import WARNING_SHA256

CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
BODY = b"Your potassium level is normal."


@pytest.fixture
def stack(tmp_path: Path, db_url: str, dns: DnsServer, ca: TestCA, mx: MxFarm) -> Iterator[Stack]:
    with portal_stack(tmp_path, db_url, dns, ca, mx) as s:
        yield s


def _csrf(page: httpx.Response) -> str:
    hit = CSRF.search(page.text)
    assert hit, page.text
    return hit.group(1)


def _bodies(stack: Stack) -> int:
    return sum(BODY in m.data for m in stack.patient_sink.messages)


def test_patient_requests_is_warned_confirms_and_withdraws(stack: Stack) -> None:
    link = stack.notice_link(stack.send())
    assert _bodies(stack) == 0  # a notice, not the message
    register = stack.services.evidence.plain
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        sign_in(stack, link, client)
        page = client.get("/p/plain")
        assert page.status_code == 200 and 'id="plain-request"' in page.text
        assert client.post("/p/plain/request", data={"csrf": "0" * 64}).status_code == 403
        warned = client.post("/p/plain/request", data={"csrf": _csrf(page)}, follow_redirects=True)
        assert 'id="plain-warning"' in warned.text and "read or changed by others" in warned.text
        [request] = register.requests(stack.tenant.id)
        assert request.state == "warned" and request.address == PATIENT
        confirmed = client.post(
            "/p/plain/confirm", data={"csrf": _csrf(warned), "request": request.id}, follow_redirects=True
        )
        assert 'id="plain-state"' in confirmed.text
        [request] = register.requests(stack.tenant.id)
        assert request.state == "confirmed"
        assert [(s.kind, s.via) for s in request.steps] == [
            ("requested", "portal"),
            ("warned", "portal"),
            ("confirmed", "portal"),
        ]
        assert request.steps[1].warning_sha256 == WARNING_SHA256

        stack.send()
        stack.run_worker()
        assert _bodies(stack) == 1  # the message itself, as asked

        withdrawn = client.post(
            "/p/plain/withdraw",
            data={"csrf": _csrf(confirmed), "request": request.id},
            follow_redirects=True,
        )
        assert 'id="plain-request"' in withdrawn.text
    assert register.requests(stack.tenant.id)[0].state == "revoked"
    stack.send()
    stack.run_worker()
    assert _bodies(stack) == 1  # back to notices


def test_a_legal_hold_keeps_a_recalled_portal_message_from_shredding(stack: Stack) -> None:
    import sqlalchemy as sa

    from sealmail.store.tables import messages

    held, free = stack.send(), stack.send()
    stack.run_worker()
    stack.services.evidence.retention.place_hold(stack.tenant.id, "message", held, "litigation", "officer")
    with stack.api() as api:
        for mid in (held, free):
            r = api.post(f"/v1/messages/{mid}/recall")
            assert r.status_code == 200 and r.json()["recalled"] == 1, r.text
    with stack.services.engine.connect() as conn:
        keys = dict(
            conn.execute(
                sa.select(messages.c.id, messages.c.wrapped_data_key).where(messages.c.id.in_([held, free]))
            ).all()
        )
    assert keys[held] is not None and keys[free] is None


@pytest.mark.hipaa("164.522(b)")
def test_patient_sets_and_withdraws_communication_preferences_that_bind_delivery(stack: Stack) -> None:
    import sqlalchemy as sa

    from sealmail.store.tables import recipients

    link = stack.notice_link(stack.send())
    plain = stack.services.evidence.plain
    prefs = stack.services.evidence.preferences
    # The patient had asked for regular e-mail; now they want the portal only.
    plain.record(stack.tenant.id, PATIENT, "signed form", "staff:ann")
    other = prefs.record(stack.tenant.id, "someone@else.example", "no_sms", "staff:ann", "staff", "call")
    with httpx.Client(base_url=stack.base_url, verify=default_context()) as client:
        sign_in(stack, link, client)
        page = client.get("/p/plain")
        assert 'id="prefs-none"' in page.text and 'id="pref-portal_only"' in page.text
        assert (
            client.post("/p/plain/prefs/set", data={"csrf": "0" * 64, "request": "no_sms"}).status_code == 403
        )
        set_ = client.post(
            "/p/plain/prefs/set", data={"csrf": _csrf(page), "request": "portal_only"}, follow_redirects=True
        )
        assert 'id="pref-withdraw-portal_only"' in set_.text and 'id="pref-portal_only"' not in set_.text
        # A redirect needs a proven address: not offered, and refused if forged.
        client.post("/p/plain/prefs/set", data={"csrf": _csrf(set_), "request": "redirect"})
        # Another patient's preference cannot be withdrawn from this session.
        client.post("/p/plain/prefs/withdraw", data={"csrf": _csrf(set_), "request": other.id})
        [mine] = prefs.preferences(stack.tenant.id, PATIENT, True)
        assert mine.kind == "portal_only" and mine.steps[0].via == "portal"
        assert prefs.get(stack.tenant.id, other.id).state == "active"

        message_id = stack.send()
        stack.run_worker()
        assert _bodies(stack) == 0  # portal only, although plain mail was confirmed
        with stack.services.engine.connect() as conn:
            method, reason = conn.execute(
                sa.select(recipients.c.method, recipients.c.method_reason).where(
                    recipients.c.message_id == message_id
                )
            ).one()
        assert method == "portal" and mine.id in reason

        withdrawn = client.post(
            "/p/plain/prefs/withdraw", data={"csrf": _csrf(set_), "request": mine.id}, follow_redirects=True
        )
        assert 'id="prefs-none"' in withdrawn.text
    assert prefs.get(stack.tenant.id, mine.id).state == "revoked"
    stack.send()
    stack.run_worker()
    assert _bodies(stack) == 1  # the confirmed plain request applies again
