"""The port SecureLine texts portal notices through (issue 17; ``sms.notices.PortalTexts``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import structlog

from sealmail.delivery.result import Result
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.secureline import Decision, Method
from sealmail.domain.tags import SystemTag
from sealmail.messages.queue import Claimed, QueuedMessage

log = structlog.get_logger("sealmail.secureline")

# Why an SMS notice was not sent when the patient's preference forbids texts; the decision's
# own reason already names the preference rows.
NO_TEXTS = "the patient asked for no text messages, 164.522(b)"


class TextedNotice(Protocol):
    @property
    def queued(self) -> bool: ...
    @property
    def reason(self) -> str: ...


class NoticeTexter(Protocol):
    """Texts the portal link to recipients whose notice goes by SMS (alone or beside email)."""

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
    ) -> TextedNotice: ...


@dataclass(frozen=True, slots=True)
class NotTexted:
    reason: str
    queued: bool = False


def sms_only(c: Claimed, decision: Decision) -> Result:
    """The portal holds the message and its notice went by text alone, as the sender chose."""
    detail = "portal notice texted; no email notice (the sender chose SMS only)"
    a = Attempt(c.address, AttemptStatus.DELIVERED, "sms_notice", detail)
    reason = f"{decision.reason}; notice by SMS only"
    return Result(c, a, str(Method.PORTAL), reason, extra={"portal_notice": {"channel": "sms"}})


async def text_notice(
    texter: NoticeTexter | None, msg: QueuedMessage, c: Claimed, link: str, decision: Decision
) -> TextedNotice:
    """The same link by SMS when the sender or the recipient chose it; never in the way
    of the email notice, which goes unless the sender chose SMS only and the text is queued.

    A patient's "no text messages" (164.522(b), ``decision.sms`` False) outranks the
    sender's choice: nothing is texted, and an SMS-only notice falls back to email.
    """
    if not decision.sms:
        return NotTexted(NO_TEXTS)
    if texter is None:
        return NotTexted("no SMS provider is configured")
    try:
        return await texter.portal_notice(
            tenant_id=msg.tenant_id,
            message_id=msg.id,
            recipient_id=c.id,
            address=c.address,
            organization=msg.tenant_name or "Your care provider",
            link=link,
            choice=c.notice,
        )
    except Exception as exc:  # noqa: BLE001 — a text that cannot be queued must not hold the mail
        log.warning("portal.sms_notice_failed", error=type(exc).__name__)
        return NotTexted(f"the text could not be queued ({type(exc).__name__})")


def portal_only(msg: QueuedMessage) -> bool:
    """Mail the portal alone may carry: never sent plain, even to a patient who asked."""
    return SystemTag.FILE_SHARE in msg.tags or SystemTag.FORM_COPY in msg.tags
