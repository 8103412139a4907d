"""Portal texts: the notice beside the email notice, reminders of unread messages, codes.

``PortalTexts`` is what SecureLine (``delivery.protect``) and the portal's sign-in
(``portal.access``) are handed.  Each method only queues a fixed-template text in the
outbox (``Texting.queue``); the worker's SMS loop sends it, so the portal and the mail
worker never wait on a provider.

The notice link is the very link the email notice carries: the same portal message,
the same sign-in.  A reminder reuses it from the sealed notice text, so no link token
is ever stored in the clear or issued twice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sealmail.domain.statuses import SmsStatus
from sealmail.sms.rules import LINK, Template
from sealmail.sms.service import Texting, TextRequest
from sealmail.sms.tables import sms_contacts, sms_texts
from sealmail.store import db
from sealmail.store.tables import portal_messages

REMINDER_AFTER = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class NoticeText:
    """What became of a portal notice's text: queued (or held past quiet hours), or why not."""

    queued: bool
    reason: str = ""


class PortalTexts:
    def __init__(
        self,
        texting: Texting,
        remind_after: timedelta = REMINDER_AFTER,
        refuses_sms: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.texting = texting
        self.remind_after = remind_after
        # (tenant, address) -> whether the patient asked for no text messages (164.522(b),
        # ``evidence/preferences.py``): then no notice, reminder or code is texted.
        self.refuses_sms = refuses_sms or (lambda _tenant_id, _address: False)

    # -- SecureLine's port ---------------------------------------------------------------------
    async def portal_notice(
        self,
        *,
        tenant_id: str,
        message_id: str,
        recipient_id: str,
        address: str,
        organization: str,
        link: str,
        choice: str | None = None,
    ) -> NoticeText:
        """Text the notice when ``choice`` (the sender's, else the contact's) includes SMS."""
        return await asyncio.to_thread(
            self._notice, tenant_id, message_id, recipient_id, address, organization, link, choice
        )

    def _notice(
        self,
        tenant_id: str,
        message_id: str,
        recipient_id: str,
        address: str,
        organization: str,
        link: str,
        choice: str | None,
    ) -> NoticeText:
        contact = self.texting.contact_for_address(tenant_id, address)
        wanted = choice or (contact.notice if contact is not None else "email")
        if wanted == "email":
            return NoticeText(False, "email chosen")
        if contact is None:
            return NoticeText(False, "no SMS contact has this address")
        if self.refuses_sms(tenant_id, address):
            # The patient's "no text messages" outranks the sender's and the contact's choice.
            return NoticeText(False, "the patient asked for no text messages, 164.522(b)")
        result = self.texting.queue(
            TextRequest(
                tenant_id,
                contact.number,
                Template.NOTICE,
                organization,
                link=link,
                message_id=message_id,
                recipient_id=recipient_id,
            )
        )
        if result.status in (SmsStatus.SENT, SmsStatus.SCHEDULED):
            return NoticeText(True)
        return NoticeText(False, result.reason or str(result.status))

    # -- the portal's code seam ----------------------------------------------------------------
    def number_for(self, tenant_id: str, address: str) -> str | None:
        """The number a sign-in code may be texted to, when the contact agreed to codes."""
        contact = self.texting.contact_for_address(tenant_id, address)
        if contact is None or self.refuses_sms(tenant_id, address):
            return None
        return str(contact.number) if self.texting.consented(tenant_id, contact.number, "code") else None

    def queue_code(
        self, *, tenant_id: str, number: str, organization: str, code: str, message_id: str, recipient_id: str
    ) -> bool:
        result = self.texting.queue(
            TextRequest(
                tenant_id,
                number,
                Template.CODE,
                organization,
                code=code,
                message_id=message_id,
                recipient_id=recipient_id,
            )
        )
        return result.status in (SmsStatus.SENT, SmsStatus.SCHEDULED)

    # -- reminders -----------------------------------------------------------------------------
    def remind_unread(self, now: datetime, limit: int = 200) -> int:
        """Queue one reminder per portal message still unread ``remind_after`` after its SMS notice."""
        t, p = sms_texts.c, portal_messages.c
        reminded = sa.select(sms_texts.c.recipient_id).where(t.template == str(Template.REMINDER))
        q = (
            sa.select(sms_texts, p.expires_at, p.viewed_at, p.recalled_at, p.address)
            .join(portal_messages, (p.recipient_id == t.recipient_id) & (p.tenant_id == t.tenant_id))
            .where(
                t.template == str(Template.NOTICE),
                t.status.in_([str(SmsStatus.SENT), str(SmsStatus.DELIVERED)]),
                t.created_at <= now - self.remind_after,
                p.viewed_at.is_(None),
                p.recalled_at.is_(None),
                p.expires_at > now,
                t.recipient_id.not_in(reminded),
            )
            .limit(limit)
        )
        with db.reader(self.texting.engine) as conn:
            rows = conn.execute(q).all()
        queued = 0
        for row in rows:
            link = self._link(row)
            if link is None or self.refuses_sms(row.tenant_id, row.address):
                continue
            organization = str(self.texting.tenancy.get_tenant(row.tenant_id).name)
            result = self.texting.queue(
                TextRequest(
                    row.tenant_id,
                    row.number,
                    Template.REMINDER,
                    organization,
                    link=link,
                    message_id=row.message_id,
                    recipient_id=row.recipient_id,
                )
            )
            queued += result.status in (SmsStatus.SENT, SmsStatus.SCHEDULED)
        return queued

    def _link(self, row: Any) -> str | None:
        text = self.texting.keyring.open(
            row.tenant_id, row.id, row.key_id, row.wrapped_key, row.content
        ).decode()
        hit = re.search(LINK + r"$", text)
        return hit.group(0) if hit else None


__all__ = ["NoticeText", "PortalTexts", "sms_contacts"]
