"""Secure texting: contacts and consent, sending through the provider, receipts, keywords.

Every text follows one path (``_send_row``): render the fixed template, check it is
PHI-free (``rules.is_template_text``), seal it, store the row, then hand it to the
provider and record the provider's reply — each step audited, and a text about a
portal message also an event on that message (the delivery trail).  Receipts and
inbound keywords come back through ``receipt`` and ``inbound`` (the ``ProviderEvents``
port), whichever provider carried them.

Database work is synchronous and short; the async methods run it in a thread so the
SMPP session's read loop and the HTTP callbacks never block the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from sealmail import audit
from sealmail.audit import AuditAction
from sealmail.domain.statuses import SmsStatus
from sealmail.ids import new_id
from sealmail.sms import rules
from sealmail.sms.contacts import SmsContacts, redact
from sealmail.sms.providers import (
    InboundText,
    OutboundText,
    ProviderReply,
    ReceiptIn,
    ReceiptState,
    SmsProvider,
)
from sealmail.sms.rules import Keyword, Purpose, Template
from sealmail.sms.tables import sms_contacts, sms_senders, sms_texts
from sealmail.store import db
from sealmail.store import events as ev
from sealmail.tenancy.keyring import Keyring
from sealmail.tenancy.service import Tenancy

Clock = Callable[[], datetime]
# Row states on the way to the provider (not outcomes, so not in SmsStatus).
QUEUED, SENDING = "queued", "sending"
RECEIPT_STATUS = {
    ReceiptState.DELIVERED: SmsStatus.DELIVERED,
    ReceiptState.FAILED: SmsStatus.FAILED,
    ReceiptState.EXPIRED: SmsStatus.EXPIRED,
    ReceiptState.SENT: SmsStatus.SENT,
}
EVENT_OF = {
    SmsStatus.SENT: ev.EventType.SMS_SENT,
    SmsStatus.DELIVERED: ev.EventType.SMS_DELIVERED,
    SmsStatus.FAILED: ev.EventType.SMS_FAILED,
    SmsStatus.EXPIRED: ev.EventType.SMS_FAILED,
}


@dataclass(frozen=True, slots=True)
class TextRequest:
    """One text to send: a fixed template, filled only with the org name and a link or code."""

    tenant_id: str
    number: str
    template: Template
    organization: str
    link: str = ""
    code: str = ""
    message_id: str | None = None
    recipient_id: str | None = None


@dataclass(frozen=True, slots=True)
class TextResult:
    sms_id: str | None
    status: SmsStatus
    reason: str = ""


class Texting(SmsContacts):
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        tenancy: Tenancy,
        provider: SmsProvider | None = None,
        clock: Clock | None = None,
        quiet: rules.QuietHours | None = None,
    ) -> None:
        self.engine = engine
        self.keyring = keyring
        self.tenancy = tenancy
        self.provider = provider
        self.now: Clock = clock or (lambda: datetime.now(UTC))
        self.quiet = quiet or rules.QuietHours()
        # Receipts that overtook the provider's reply (an SMSC may send deliver_sm before we
        # have stored its submit_sm_resp): applied as soon as the reply is recorded.
        self._early: dict[tuple[str, str], ReceiptIn] = {}
        self._early_lock = threading.Lock()

    # -- sending ------------------------------------------------------------------------------
    def queue(self, req: TextRequest) -> TextResult:
        """Store one text for the worker's SMS loop (``send_due``): the outbox, for callers
        that are not on the provider's event loop (the portal's code button)."""
        return self._prepare(req)

    async def send(self, req: TextRequest) -> TextResult:
        """Send (or schedule past quiet hours, or refuse for lack of consent) one text now."""
        decided = await asyncio.to_thread(self._prepare, req)
        if decided.status is not SmsStatus.SENT or decided.sms_id is None:
            return decided
        # Another sender may have claimed it meanwhile (send_due): then it is on its way.
        return await self._dispatch(decided.sms_id) or decided

    def _prepare(self, req: TextRequest) -> TextResult:
        """Check and store the text; SENT here means 'ready to hand to the provider now'."""
        now = self.now()
        number = self._number(req.number, "number")
        purpose = rules.PURPOSE_OF.get(req.template)
        with db.reader(self.engine) as conn:
            sender = conn.execute(
                sa.select(sms_senders.c.number).where(sms_senders.c.tenant_id == req.tenant_id).limit(1)
            ).scalar_one_or_none()
            contact = conn.execute(
                sa.select(sms_contacts).where(
                    sms_contacts.c.tenant_id == req.tenant_id, sms_contacts.c.number == number
                )
            ).first()
            consents = self._consents(conn, req.tenant_id, number)
        why = ""
        if sender is None:
            why = "no_sender_number"
        elif contact is None and purpose is not None:
            why = "unknown_contact"
        elif purpose is not None and not consents.get(purpose, False):
            why = "no_consent"
        if why:
            with self.engine.begin() as conn:
                audit.append(
                    conn,
                    action=AuditAction.SMS_REFUSED,
                    actor="sms",
                    tenant_id=req.tenant_id,
                    target=redact(number),
                    details={"template": str(req.template), "reason": why, "message_id": req.message_id},
                )
            return TextResult(None, SmsStatus.REFUSED, why)
        assert sender is not None
        text = rules.render(req.template, req.organization, link=req.link, code=req.code)
        if not rules.is_template_text(text, req.organization):
            # The last gate: nothing but a fixed template with the org name, a link or a code leaves.
            raise ValueError("an SMS text must be a fixed template (PHI check)")
        due = now
        if purpose is not None and contact is not None:
            due = rules.next_allowed(now, contact.time_zone, purpose, self.quiet)
        status = SmsStatus.SENT if due <= now else SmsStatus.SCHEDULED
        sms_id = self._store(req, number, sender, text, purpose, status, due, now)
        return TextResult(sms_id, status, "" if status is SmsStatus.SENT else "quiet_hours")

    def _store(
        self,
        req: TextRequest,
        number: str,
        sender: str,
        text: str,
        purpose: Purpose | None,
        status: SmsStatus,
        due: datetime,
        now: datetime,
    ) -> str:
        sms_id = new_id("sms")
        key_id, wrapped, blob = self.keyring.seal(req.tenant_id, sms_id, text.encode())
        provider = self.provider.name if self.provider else "none"
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(sms_texts).values(
                    id=sms_id,
                    tenant_id=req.tenant_id,
                    number=number,
                    sender=sender,
                    template=str(req.template),
                    purpose=str(purpose) if purpose else None,
                    message_id=req.message_id,
                    recipient_id=req.recipient_id,
                    status=QUEUED if status is SmsStatus.SENT else str(status),
                    provider=provider,
                    digest=hashlib.sha256(text.encode()).hexdigest(),
                    key_id=key_id,
                    wrapped_key=wrapped,
                    content=blob,
                    created_at=now,
                    due_at=due,
                    updated_at=now,
                )
            )
            if status is SmsStatus.SCHEDULED:
                audit.append(
                    conn,
                    action=AuditAction.SMS_SCHEDULED,
                    actor="sms",
                    tenant_id=req.tenant_id,
                    target=sms_id,
                    details={"until": due.isoformat(), "template": str(req.template)},
                )
        return sms_id

    async def send_due(self, limit: int = 100) -> int:
        """Send queued texts and those whose quiet hours are over; the number handed on."""
        now = self.now()
        with db.reader(self.engine) as conn:
            ids = (
                conn.execute(
                    sa.select(sms_texts.c.id)
                    .where(
                        sms_texts.c.status.in_([QUEUED, str(SmsStatus.SCHEDULED)]), sms_texts.c.due_at <= now
                    )
                    .order_by(sms_texts.c.due_at)
                    .limit(limit)
                )
                .scalars()
                .all()
            )
        sent = 0
        for sms_id in ids:
            if await self._dispatch(sms_id) is not None:
                sent += 1
        return sent

    def _claim(self, sms_id: str) -> Any:
        """Take one text for sending; None when another worker already has it."""
        with self.engine.begin() as conn:
            taken = conn.execute(
                sa.update(sms_texts)
                .where(sms_texts.c.id == sms_id, sms_texts.c.status.in_([QUEUED, str(SmsStatus.SCHEDULED)]))
                .values(status=SENDING, updated_at=self.now())
            ).rowcount
            if taken != 1:
                return None
            return conn.execute(sa.select(sms_texts).where(sms_texts.c.id == sms_id)).one()

    async def _dispatch(self, sms_id: str) -> TextResult | None:
        row = await asyncio.to_thread(self._claim, sms_id)
        if row is None:
            return None
        text = self.keyring.open(row.tenant_id, row.id, row.key_id, row.wrapped_key, row.content).decode()
        if self.provider is None:
            reply = ProviderReply(False, "", "no_provider", "no SMS provider is configured")
        else:
            reply = await self.provider.send(OutboundText(row.id, row.sender, row.number, text))
        status = SmsStatus.SENT if reply.accepted else SmsStatus.FAILED
        await asyncio.to_thread(self._record_reply, row, status, reply)
        return TextResult(row.id, status, reply.detail)

    def _record_reply(self, row: Any, status: SmsStatus, reply: ProviderReply) -> None:
        pid, raw, detail = reply.provider_message_id, reply.status, reply.detail
        now = self.now()
        # The provider is the sender's, not the queuer's: the portal queues, the worker sends.
        provider = self.provider.name if self.provider else "none"
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(sms_texts)
                .where(sms_texts.c.id == row.id)
                .values(
                    status=str(status),
                    provider=provider,
                    provider_message_id=pid or None,
                    status_reason=detail[:200] or None,
                    updated_at=now,
                )
            )
            facts = {
                "sms_id": row.id,
                "template": row.template,
                "provider": provider,
                "provider_status": raw,
                "provider_message_id": pid,
                "detail": detail[:200],
                "segments": reply.segments,
            }
            action = AuditAction.SMS_SENT if status is SmsStatus.SENT else AuditAction.SMS_FAILED
            audit.append(
                conn,
                action=action,
                actor="sms",
                tenant_id=row.tenant_id,
                target=row.id,
                details={**facts, "to": redact(row.number)},
            )
            self._event(conn, row, status, facts, now)
        if pid:
            with self._early_lock:
                early = self._early.pop((provider, pid), None)
            if early is not None:
                self._receipt(early)

    def _event(
        self, conn: Connection, row: Any, status: SmsStatus, facts: dict[str, Any], now: datetime
    ) -> None:
        if row.message_id is None or status not in EVENT_OF:
            return
        ev.emit(
            conn,
            tenant_id=row.tenant_id,
            message_id=row.message_id,
            type_=EVENT_OF[status],
            recipient_id=row.recipient_id,
            recipient=None,
            data={"channel": "sms", **facts},
            at=now,
        )

    # -- what providers report (ProviderEvents) --------------------------------------------------
    async def receipt(self, receipt: ReceiptIn) -> None:
        await asyncio.to_thread(self._receipt, receipt)

    def _receipt(self, r: ReceiptIn) -> None:
        if self._apply_receipt(r):
            return
        key = (r.provider, r.provider_message_id)
        with self._early_lock:
            if len(self._early) >= 1000:
                return
            self._early[key] = r
        # The reply may have been recorded between the lookup above and keeping the receipt
        # (its pop then found nothing): look again, and whichever side pops the receipt
        # applies it, exactly once.
        with db.reader(self.engine) as conn:
            recorded = conn.execute(self._by_provider_id(r)).first() is not None
        if recorded:
            with self._early_lock:
                mine = self._early.pop(key, None)
            if mine is not None:
                self._apply_receipt(mine)

    @staticmethod
    def _by_provider_id(r: ReceiptIn) -> Any:
        return sa.select(sms_texts).where(
            sms_texts.c.provider == r.provider,
            sms_texts.c.provider_message_id == r.provider_message_id,
        )

    def _apply_receipt(self, r: ReceiptIn) -> bool:
        """The receipt applied to its text; False when no reply with its id is recorded yet."""
        now = self.now()
        status = RECEIPT_STATUS[r.state]
        with self.engine.begin() as conn:
            row = conn.execute(self._by_provider_id(r)).first()
            if row is None:
                return False
            conn.execute(
                sa.update(sms_texts)
                .where(sms_texts.c.id == row.id)
                .values(
                    status=str(status),
                    status_reason=(f"{r.raw_state} {r.error}".strip())[:200],
                    updated_at=now,
                )
            )
            facts = {
                "sms_id": row.id,
                "provider": r.provider,
                "receipt": r.raw_state,
                "error": r.error,
                "provider_message_id": r.provider_message_id,
            }
            audit.append(
                conn,
                action=AuditAction.SMS_RECEIPT,
                actor=f"sms:{r.provider}",
                tenant_id=row.tenant_id,
                target=row.id,
                details=facts,
            )
            if status is not SmsStatus.SENT:
                self._event(conn, row, status, facts, now)
        return True

    async def inbound(self, text: InboundText) -> None:
        reply = await asyncio.to_thread(self._inbound, text)
        if reply is None:
            return
        if self.provider is None:
            # A process without the provider (the public site taking HTTP callbacks) queues
            # the reply for the worker's SMS loop.
            await asyncio.to_thread(self.queue, reply)
        else:
            await self.send(reply)

    def _inbound(self, t: InboundText) -> TextRequest | None:
        """Apply a keyword at once (a STOP is in force before any reply is sent)."""
        try:
            ours, theirs = rules.e164(t.destination), rules.e164(t.source)
        except rules.InvalidNumber:
            return None
        now = self.now()
        got = rules.classify(t.body)
        with self.engine.begin() as conn:
            tenant_id = conn.execute(
                sa.select(sms_senders.c.tenant_id).where(sms_senders.c.number == ours)
            ).scalar_one_or_none()
            if tenant_id is None:
                return None
            if got.keyword in (Keyword.STOP, Keyword.START):
                for purpose in got.purposes:
                    self._consent(
                        conn, tenant_id, theirs, purpose, got.keyword is Keyword.START, "keyword", now
                    )
            action = {Keyword.STOP: AuditAction.SMS_OPTED_OUT, Keyword.START: AuditAction.SMS_OPTED_IN}.get(
                got.keyword, AuditAction.SMS_INBOUND
            )
            audit.append(
                conn,
                action=action,
                actor=f"sms:{t.provider}",
                tenant_id=tenant_id,
                target=redact(theirs),
                details={"keyword": str(got.keyword), "purposes": [str(p) for p in got.purposes]},
            )
        template = {
            Keyword.STOP: Template.STOPPED,
            Keyword.START: Template.STARTED,
            Keyword.HELP: Template.HELP,
        }
        if got.keyword not in template:
            return None
        org = str(self.tenancy.get_tenant(tenant_id).name)
        return TextRequest(tenant_id, theirs, template[got.keyword], org)
