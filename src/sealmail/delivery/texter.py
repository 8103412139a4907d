"""The port SecureLine texts portal notices through (issue 17; ``sms.notices.PortalTexts``)."""

from __future__ import annotations

from typing import Protocol


class NoticeTexter(Protocol):
    """Texts the portal link too, to recipients who chose email and SMS notices (issue 17)."""

    async def portal_notice(
        self,
        *,
        tenant_id: str,
        message_id: str,
        recipient_id: str,
        address: str,
        organization: str,
        link: str,
    ) -> None: ...
