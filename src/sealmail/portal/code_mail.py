"""How a portal sign-in code is counted and mailed: a mixin of ``PortalAccess``.

Kept apart from the sign-in flow (``portal.access``) so that file reads as the flow;
the rate of codes per address and the PHI-free code mail are the two steps here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sealmail.domain import message as mime
from sealmail.domain.addresses import parse_address
from sealmail.domain.tags import SystemTag
from sealmail.domain.tls_policy import Stream, TlsPolicy
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.portal.records import Hold, PortalPolicy
from sealmail.portal.tables import portal_lockouts
from sealmail.tenancy.service import Principal


class CodeMail:
    policy: PortalPolicy
    messages: Messages
    message_id_domain: str
    now: Callable[[], datetime]

    def _lock_row(self, conn: Connection, tenant_id: str, address: str) -> Any: ...

    def _count_code(self, conn: Connection, tenant_id: str, address: str, now: datetime) -> bool:
        """At most ``codes_per_hour`` codes per address: the portal is no mail cannon."""
        row = self._lock_row(conn, tenant_id, address)
        key = (portal_lockouts.c.tenant_id == tenant_id) & (portal_lockouts.c.address == address.lower())
        if row is None:
            conn.execute(
                sa.insert(portal_lockouts).values(
                    tenant_id=tenant_id,
                    address=address.lower(),
                    failures=0,
                    window_started_at=now,
                    codes_sent=1,
                    codes_window_started_at=now,
                )
            )
            return True
        started = row.codes_window_started_at
        if started is None or started <= now - timedelta(hours=1):
            conn.execute(
                sa.update(portal_lockouts).where(key).values(codes_sent=1, codes_window_started_at=now)
            )
            return True
        if row.codes_sent >= self.policy.codes_per_hour:
            return False
        conn.execute(sa.update(portal_lockouts).where(key).values(codes_sent=row.codes_sent + 1))
        return True

    def _mail_code(
        self, hold: Hold, mail_from: str, organization: str, code: str, tls_policy: TlsPolicy
    ) -> None:
        """The code email: PHI-free by construction (organisation name and the code only).

        It goes through the normal pipeline on the transactional stream, with the TLS
        policy ``code_plan`` chose: the message's required level unless the tenant
        loosened that explicitly.  A code is not PHI, but together with the link it
        opens the message, so it may not cross a channel weaker than the message's own
        (an on-path attacker who stripped STARTTLS from the notice would read it too).
        """
        sender = parse_address(mail_from, "from")
        rcpt = parse_address(hold.address, "to")
        minutes = int(self.policy.code_ttl.total_seconds() // 60)
        text = (
            f"Your sign-in code for the secure message from {organization} is:\n\n"
            f"    {code}\n\nIt works once, for {minutes} minutes. If you did not ask for a code, "
            "you can ignore this email.\n"
        )
        built = mime.build(
            mime.Draft(
                sender=dataclasses.replace(sender, display_name=organization),
                to=(rcpt,),
                subject=f"Your sign-in code from {organization}",
                text=text,
                headers=(("Auto-Submitted", "auto-generated"),),
            ),
            self.message_id_domain,
        )
        sub = Submission(
            stream=Stream.TRANSACTIONAL,
            source="portal",
            mail_from=sender.smtp_addr_spec,
            header_from=sender.smtp_addr_spec,
            recipients=(EnvelopeRecipient(rcpt.smtp_addr_spec, rcpt.ascii_domain, "to"),),
            raw=built.raw,
            message_id_header=built.message_id,
            tags=(SystemTag.PORTAL_CODE,),
            # Ties the code mail (and its delivered event's TLS facts) to the hold.
            metadata={"portal_message_id": hold.id},
            # SecureLine never turns a code mail into a notice: below this level it is
            # deferred, never sent.
            tls_policy=tls_policy,
        )
        who = Principal(hold.tenant_id, f"portal:{hold.recipient_id}", frozenset())
        self.messages.submit(who, sub, system=True)
