"""Mailing evidence notices to the compliance officer: an audit anchor (a copy outside the
database), a failed restore drill.

The anchor travels as a JSON attachment (the signed document ``sealmail verify`` checks),
queued as a system message like the webhook alerts, so it is stored, delivered, retried
and audited as any mail.  It holds no PHI: a sequence number, a hash and a signature; a drill
notice holds the drill's report (times, counts, the problem), no content either.
"""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.errors import InvalidRequest
from sealmail.messages.service import EnvelopeRecipient, Messages, Submission
from sealmail.tenancy.service import Principal

ANCHOR_TAG = "audit-anchor"


class AnchorMailer:
    def __init__(self, messages: Messages, hostname: str) -> None:
        self.messages = messages
        self.hostname = hostname

    def send(self, tenant_id: str, to: str, doc: dict[str, Any]) -> str:
        """Queue the anchor for ``to`` (checked like any address); returns the message id."""
        body = doc["body"]
        text = (
            "The audit log's head was anchored.\n\n"
            f"Entry: {body['seq']}\nHash: {body['head_hash']}\nAt: {body['anchored_at']}\n"
            f"Signing key: {doc['signature']['key_fingerprint']}\n\n"
            "Keep the attached file. `sealmail verify` checks it offline; `sealmail audit verify`\n"
            "reports any history rewritten before it.\n"
        )
        attachment = (json.dumps(doc, indent=2, sort_keys=True).encode(), f"anchor-{body['seq']}.json")
        subject = f"Sealmail audit anchor: entry {body['seq']}"
        return self.notify(
            tenant_id, to, subject, text, ANCHOR_TAG, {"audit_anchor": str(body["anchor_id"])}, attachment
        )

    def notify(
        self,
        tenant_id: str,
        to: str,
        subject: str,
        text: str,
        tag: str,
        metadata: dict[str, str],
        attachment: tuple[bytes, str] | None = None,
    ) -> str:
        """Queue one evidence notice (an anchor, a failed drill) with an optional JSON file."""
        try:
            rcpt = parse_address(to, "mail_to")
        except InvalidAddress as exc:
            raise InvalidRequest(f"--mail-to: {exc.reason}") from exc
        sender = f"postmaster@{self.hostname}"
        message_id = email.utils.make_msgid(domain=self.hostname)
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = rcpt.addr_spec
        msg["Subject"] = subject
        msg["Date"] = email.utils.format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id
        # RFC 3834 §5: automatic mail says so.
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        if attachment is not None:
            data, filename = attachment
            msg.add_attachment(data, maintype="application", subtype="json", filename=filename)
        sub = Submission(
            stream=Stream.TRANSACTIONAL,
            source="system",
            mail_from="",  # null reverse-path (RFC 5321 §4.5.5): never bounce a notice
            header_from=sender,
            recipients=(EnvelopeRecipient(rcpt.smtp_addr_spec, rcpt.ascii_domain, "env"),),
            raw=msg.as_bytes(),
            message_id_header=message_id,
            tags=(tag,),
            metadata=metadata,
        )
        who = Principal(tenant_id, "system:evidence", frozenset({"send"}))
        result, _ = self.messages.submit(who, sub, system=True)
        return result.id
