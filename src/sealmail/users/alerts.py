"""Alerts to a tenant's owners: a lockout, an emergency access, through the product's own queue.

Queued as a system message (``Messages.submit(…, system=True)``) like the webhook and audit
anchor notices, so it is stored, delivered, retried and audited as any mail.  It is PHI-free
by construction: it names accounts and times, never a message or a patient.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from email.message import EmailMessage

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.store import db
from sealmail.tenancy.service import Principal
from sealmail.users.roles import Role
from sealmail.users.tables import console_users

log = structlog.get_logger("sealmail.users")

ALERT_TAG = "console-alert"


class OwnerMailer:
    """``OwnerAlert``: one message to every active owner of the tenant."""

    def __init__(self, engine: Engine, messages: Messages, hostname: str) -> None:
        self.engine = engine
        self.messages = messages
        self.hostname = hostname

    def owners(self, tenant_id: str) -> list[str]:
        with db.reader(self.engine) as conn:
            return list(
                conn.execute(
                    sa.select(console_users.c.email)
                    .where(
                        console_users.c.tenant_id == tenant_id,
                        console_users.c.role == Role.OWNER,
                        console_users.c.disabled_at.is_(None),
                    )
                    .order_by(console_users.c.email)
                ).scalars()
            )

    def __call__(self, tenant_id: str, subject: str, text: str) -> None:
        rcpts = []
        for owner in self.owners(tenant_id):
            try:
                rcpts.append(parse_address(owner, "owner"))
            except InvalidAddress:
                log.warning("console.alert_bad_owner_address", tenant_id=tenant_id)
        if not rcpts:
            log.warning("console.alert_no_owner", tenant_id=tenant_id, subject=subject)
            return
        sender = f"postmaster@{self.hostname}"
        message_id = email.utils.make_msgid(domain=self.hostname)
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(r.addr_spec for r in rcpts)
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5
        msg.set_content(text)
        sub = Submission(
            stream=Stream.TRANSACTIONAL,
            source="system",
            mail_from="",  # null reverse-path (RFC 5321 §4.5.5): never bounce a notice
            header_from=sender,
            recipients=tuple(EnvelopeRecipient(r.smtp_addr_spec, r.ascii_domain, "env") for r in rcpts),
            raw=msg.as_bytes(),
            message_id_header=message_id,
            tags=(ALERT_TAG,),
        )
        who = Principal(tenant_id, "system:console", frozenset({"send"}))
        result, _ = self.messages.submit(who, sub, system=True)
        log.info("console.alert_queued", tenant_id=tenant_id, message_id=result.id)
