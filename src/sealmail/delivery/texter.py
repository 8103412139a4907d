"""The port SecureLine texts portal notices through (issue 17; ``sms.notices.PortalTexts``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sealmail.delivery.result import Result
from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.secureline import Decision, Method
from sealmail.messages.queue import Claimed


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
