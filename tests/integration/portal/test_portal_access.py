"""Sign-in codes, lockout, sessions and expiry at the service level, with a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from tests.conftest import TenantFixture, make_tenant

from sealmail.app import Services
from sealmail.engagement.tables import tracked_links
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.portal.access import LinkState, PortalAccess, PortalPolicy, SignInStatus
from sealmail.portal.lifecycle import PortalLifecycle
from sealmail.portal.mailbox import Mailbox
from sealmail.store.tables import messages, recipients

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: Any) -> None:
        self.now += timedelta(**kw)


@dataclass
class World:
    services: Services
    tenant: TenantFixture
    access: PortalAccess
    mailbox: Mailbox
    lifecycle: PortalLifecycle
    clock: Clock
    codes: list[str]

    def hold(self, to: str = "pat@plain.example", tenant: TenantFixture | None = None) -> tuple[str, str]:
        """Accept a message and hold it for the portal as the worker would; (message id, link token)."""
        t = tenant or self.tenant
        body = MessageIn.model_validate(
            {"from": f"doc@{t.domain}", "to": [to], "subject": "Results", "text": "Fine.", "stream": "phi"}
        )
        result, _ = self.services.messages.submit(t.principal, compose.from_message(body, "t.test", 10))
        rcpt = result.recipients[0]
        link, _ = self.services.portal.hold(
            tenant_id=t.id,
            message_id=result.id,
            recipient_id=rcpt.id,
            address=to,
            reason="test",
            now=T0,
        )
        return result.id, link.rsplit("/", 1)[1]

    def sign_in(self, token: str) -> str:
        state, challenge = self.access.open_link(token)
        assert state is LinkState.OPEN and challenge
        assert self.access.send_code(challenge).status is SignInStatus.OK
        result = self.access.verify_code(challenge, self.codes[-1])
        assert result.status is SignInStatus.OK and result.session_token
        return result.session_token


@pytest.fixture
def world(services: Services, tenant: TenantFixture, monkeypatch: pytest.MonkeyPatch) -> World:
    clock = Clock()
    hasher = PasswordHasher(time_cost=1, memory_cost=64)
    access = PortalAccess(services.engine, services.messages, hasher, policy=PortalPolicy(), clock=clock)
    codes: list[str] = []
    real: Callable[..., None] = access._mail_code

    def capture(hold: Any, mail_from: str, org: str, code: str, *rest: Any) -> None:
        codes.append(code)
        real(hold, mail_from, org, code, *rest)

    monkeypatch.setattr(access, "_mail_code", capture)
    return World(
        services, tenant, access, Mailbox(access, services.keyring, services.messages),
        PortalLifecycle(services.engine, hasher), clock, codes,
    )  # fmt: skip


def test_a_code_works_once(world: World) -> None:
    _, token = world.hold()
    _, challenge = world.access.open_link(token)
    assert challenge
    world.access.send_code(challenge)
    assert world.access.verify_code(challenge, world.codes[-1]).status is SignInStatus.OK
    assert world.access.verify_code(challenge, world.codes[-1]).status is SignInStatus.EXPIRED


def test_a_code_typed_in_another_script_or_spaced_works_and_lookalikes_do_not(world: World) -> None:
    """A patient on an Arabic keyboard types ٠–٩ (int() reads them as digits, but the code's
    hash is over ASCII); superscripts, which str.isdigit also calls digits, are no digits."""
    _, token = world.hold()
    _, challenge = world.access.open_link(token)
    assert challenge
    world.access.send_code(challenge)
    code = world.codes[-1]
    superscript = code.translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
    assert world.access.verify_code(challenge, superscript).status is SignInStatus.WRONG
    arabic = " ".join(code.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    assert world.access.verify_code(challenge, arabic).status is SignInStatus.OK


def test_a_code_expires_after_its_lifetime(world: World) -> None:
    _, token = world.hold()
    _, challenge = world.access.open_link(token)
    assert challenge
    world.access.send_code(challenge)
    world.clock.advance(minutes=11)
    assert world.access.verify_code(challenge, world.codes[-1]).status is SignInStatus.EXPIRED


def test_the_code_mail_carries_no_phi(world: World) -> None:
    _, token = world.hold()
    world.sign_in(token)
    with world.services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages.c.id, messages.c.stream).where(messages.c.source == "portal")
        ).all()
    [(code_mid, stream)] = rows
    content = world.services.messages.content(world.tenant.principal, code_mid)
    assert stream == "transactional"
    assert "Results" not in content.subject and "Fine." not in (content.text or "")
    assert world.codes[-1] in (content.text or "")


def test_five_wrong_codes_lock_the_address_for_every_link(world: World) -> None:
    _, token = world.hold()
    _, challenge = world.access.open_link(token)
    assert challenge
    world.access.send_code(challenge)
    wrong = "000000" if world.codes[-1] != "000000" else "111111"
    results = [world.access.verify_code(challenge, wrong).status for _ in range(5)]
    assert results == [SignInStatus.WRONG] * 4 + [SignInStatus.LOCKED]
    assert world.access.verify_code(challenge, world.codes[-1]).status is SignInStatus.LOCKED
    _, again = world.access.open_link(token)
    assert again
    assert world.access.send_code(again).status is SignInStatus.LOCKED
    world.clock.advance(minutes=31)
    assert world.access.send_code(again).status is SignInStatus.OK


def test_idle_session_is_rejected_and_activity_keeps_it_alive(world: World) -> None:
    _, token = world.hold()
    session = world.sign_in(token)
    world.clock.advance(minutes=14)
    assert world.access.session(session)[0] is not None
    world.clock.advance(minutes=14)
    assert world.access.session(session)[0] is not None
    world.clock.advance(minutes=16)
    assert world.access.session(session) == (None, "idle")
    assert world.access.session(session) == (None, "none")


def test_session_ends_at_its_absolute_lifetime_despite_activity(world: World) -> None:
    _, token = world.hold()
    session = world.sign_in(token)
    for _ in range(40):
        world.clock.advance(minutes=12)
        if world.access.session(session)[0] is None:
            break
    assert world.clock.now - T0 <= timedelta(hours=8, minutes=12)
    assert world.access.session(session)[0] is None


def test_inbox_holds_every_message_for_the_address_but_only_this_tenants(world: World) -> None:
    world.hold()
    _, token = world.hold()
    other = make_tenant(world.services, name="Other", domain="other.example")
    world.hold(tenant=other)
    session, _ = world.access.session(world.sign_in(token))
    assert session
    items = world.mailbox.inbox(session)
    assert len(items) == 2 and {i.hold.tenant_id for i in items} == {world.tenant.id}
    assert all(i.subject == "Results" for i in items)


def test_passphrase_opens_only_its_message(world: World) -> None:
    mid, token = world.hold()
    world.hold()
    world.lifecycle.configure(world.tenant.id, mid, "test", passphrase="correct horse battery")
    _, challenge = world.access.open_link(token)
    assert challenge
    assert world.access.verify_passphrase(challenge, "wrong guess!").status is SignInStatus.WRONG
    result = world.access.verify_passphrase(challenge, "correct horse battery")
    assert result.status is SignInStatus.OK and result.session_token
    session, _ = world.access.session(result.session_token)
    assert session
    assert [i.hold.message_id for i in world.mailbox.inbox(session)] == [mid]


def test_expiry_shreds_only_when_no_other_recipient_needs_the_content(world: World) -> None:
    body = MessageIn.model_validate(
        {"from": "doc@clinic.example", "to": ["pat@plain.example", "nurse@tls.example"], "subject": "S",
         "text": "x", "stream": "phi"}
    )  # fmt: skip
    result, _ = world.services.messages.submit(
        world.tenant.principal, compose.from_message(body, "t.test", 10)
    )
    mid = result.id
    portal_rcpt = result.recipients[0].id
    world.services.portal.hold(
        tenant_id=world.tenant.id, message_id=mid, recipient_id=portal_rcpt, address="pat@plain.example",
        reason="t", now=datetime.now(UTC), days=1,
    )  # fmt: skip
    with world.services.engine.begin() as conn:
        # The message's click-tracking URLs (sealed apart from the content) go with it.
        conn.execute(
            sa.insert(tracked_links).values(
                message_id=mid, tenant_id=world.tenant.id, link_count=1, tenant_key_id="tk_x",
                wrapped_key=b"k", urls=b"sealed", created_at=datetime.now(UTC),
            )
        )  # fmt: skip
    later = datetime.now(UTC) + timedelta(days=2)
    swept = world.lifecycle.sweep(later)
    assert swept.expired == 1 and swept.shredded == 0  # the nurse is still queued

    def key() -> Any:
        with world.services.engine.connect() as conn:
            return conn.execute(
                sa.select(messages.c.wrapped_data_key).where(messages.c.id == mid)
            ).scalar_one()

    assert key() is not None
    with world.services.engine.begin() as conn:
        conn.execute(sa.update(recipients).where(recipients.c.message_id == mid).values(status="delivered"))
    assert world.lifecycle.sweep(later).shredded == 1
    assert key() is None
    with world.services.engine.connect() as conn:
        assert conn.execute(sa.select(tracked_links).where(tracked_links.c.message_id == mid)).first() is None
    types = [
        e["type"] for e in world.services.messages.list_events(world.tenant.principal, message_id=mid).data
    ]
    assert types.count("portal.expired") == 1


def test_tenant_policy_can_require_a_passphrase_and_refuse_emailed_codes(world: World) -> None:
    world.services.tenancy.update_settings(
        world.tenant.id, {"secureline": {"portal_require_passphrase": True}}, actor="test"
    )
    mid, token = world.hold()
    _, challenge = world.access.open_link(token)
    assert challenge
    assert world.access.send_code(challenge).status is SignInStatus.EXPIRED
    assert world.codes == []  # nothing was mailed
    assert world.access.verify_passphrase(challenge, "anything at all").status is SignInStatus.EXPIRED
    world.lifecycle.configure(world.tenant.id, mid, "test", passphrase="told by phone")
    result = world.access.verify_passphrase(challenge, "told by phone")
    assert result.status is SignInStatus.OK
