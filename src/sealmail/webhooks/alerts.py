"""Telling the tenant's administrator that an endpoint was disabled.

The notice is a system message queued through ``Messages.submit(…, system=True)``, so it
is stored, delivered, retried and audited like any other mail.  It is PHI-free by
construction: it names the endpoint id, its URL without the query string, the reason and
the time, never an event, recipient or message.  The address comes from the tenant
setting ``admin_email``; without it there is nobody to tell and nothing is queued.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from email.message import EmailMessage

import structlog

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.net.http_client import redact_url
from sealmail.tenancy.service import Principal, Tenancy

log = structlog.get_logger("sealmail.webhooks")

ALERT_TAG = "webhook-endpoint-disabled"


def build_notice(
    *, sender: str, to: str, endpoint_id: str, url: str, reason: str, at: datetime, message_id: str
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "Sealmail: a webhook endpoint was disabled"
    msg["Date"] = email.utils.format_datetime(at)
    msg["Message-ID"] = message_id
    # RFC 3834 §5: automatic responses say so, so autoresponders do not answer them.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(
        "Sealmail stopped sending webhooks to one of your endpoints.\n\n"
        f"Endpoint: {endpoint_id}\n"
        f"URL: {redact_url(url)}\n"
        f"Reason: {reason}\n"
        f"Disabled at: {at.isoformat()}\n\n"
        "Events keep being recorded. Fix the receiver, re-enable the endpoint\n"
        "(PATCH /v1/webhook-endpoints/{id} with status=active) and replay what it\n"
        "missed (POST /v1/webhook-endpoints/{id}/replay?since=...).\n"
    )
    return msg.as_bytes()


class DisabledNotifier:
    def __init__(self, messages: Messages, tenancy: Tenancy, hostname: str) -> None:
        self.messages = messages
        self.tenancy = tenancy
        self.hostname = hostname

    def __call__(self, tenant_id: str, endpoint_id: str, url: str, reason: str) -> str | None:
        """Queue the notice; returns its message id, or ``None`` when there is no admin address."""
        admin = self.tenancy.get_tenant(tenant_id).settings.get("admin_email")
        if not admin:
            log.warning("webhook.disabled_no_admin_email", tenant_id=tenant_id, endpoint_id=endpoint_id)
            return None
        try:
            to = parse_address(str(admin), "admin_email")
        except InvalidAddress:
            log.warning("webhook.disabled_bad_admin_email", tenant_id=tenant_id, endpoint_id=endpoint_id)
            return None
        now = datetime.now(UTC)
        sender = f"postmaster@{self.hostname}"
        message_id = email.utils.make_msgid(domain=self.hostname)
        sub = Submission(
            stream=Stream.TRANSACTIONAL,
            # "dsn" is the source Messages knows for mail Sealmail originates itself.
            source="system",
            mail_from="",  # null reverse-path (RFC 5321 §4.5.5): never bounce a notice
            header_from=sender,
            recipients=(EnvelopeRecipient(to.smtp_addr_spec, to.ascii_domain, "env"),),
            raw=build_notice(
                sender=sender,
                to=to.addr_spec,
                endpoint_id=endpoint_id,
                url=url,
                reason=reason,
                at=now,
                message_id=message_id,
            ),
            message_id_header=message_id,
            tags=(ALERT_TAG,),
            metadata={"webhook_endpoint": endpoint_id},
        )
        who = Principal(tenant_id, "system:webhooks", frozenset({"send"}))
        result, _ = self.messages.submit(who, sub, system=True)
        log.info("webhook.disabled_notice_queued", endpoint_id=endpoint_id, message_id=result.id)
        return result.id
