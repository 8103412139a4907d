"""mailto reports go through the normal queue as the tenant's own mail (DKIM-signed by the
worker with the tenant's domain key), like DSNs do."""

from __future__ import annotations

from sealmail.domain.addresses import parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.tenancy.service import Principal


class QueueMail:
    def __init__(self, messages: Messages) -> None:
        self.messages = messages

    def submit(self, tenant_id: str, *, sender: str, to: str, raw: bytes, message_id: str) -> str:
        rcpt = parse_address(to, "to")
        sub = Submission(
            stream=Stream.TRANSACTIONAL,
            source="system",
            mail_from=sender,
            header_from=sender,
            recipients=(EnvelopeRecipient(rcpt.smtp_addr_spec, rcpt.ascii_domain, "to"),),
            raw=raw,
            message_id_header=message_id,
            tags=("tlsrpt",),
        )
        who = Principal(tenant_id, "system:tlsrpt", frozenset({"send"}))
        result, _ = self.messages.submit(who, sub, system=True)
        return result.id
