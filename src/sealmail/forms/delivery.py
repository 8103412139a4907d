"""A stored submission as the secure message that delivers it to the tenant's recipients.

The message is an ordinary ``phi``-stream submission: SecureLine decides per recipient
whether it goes out OpenPGP- or S/MIME-encrypted or as a portal notice, exactly as for
a message sent through the API.  Its subject names only the form, never an answer.
"""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime
from typing import Any

from sealmail.domain import message as mime
from sealmail.domain.addresses import parse_address
from sealmail.domain.tls_policy import Stream
from sealmail.forms import rendering
from sealmail.forms.definition import FormDefinition
from sealmail.messages.service import EnvelopeRecipient, Submission


def build_message(
    definition: FormDefinition, stored: dict[str, Any], organization: str, message_id_domain: str
) -> Submission:
    doc = stored["document"]
    facts = rendering.SubmissionFacts(
        doc["submission_id"],
        doc["form_id"],
        int(doc["form_version"]),
        datetime.fromisoformat(doc["received_at"]),
        organization,
    )
    text = rendering.to_text(facts, definition, doc["answers"])
    attachments = [
        mime.Attachment("submission.json", "application/json", rendering.to_json(doc)),
        mime.Attachment("submission.pdf", "application/pdf", rendering.to_pdf(text)),
        *(
            mime.Attachment(f["filename"], f["media_type"], base64.b64decode(f["data"]))
            for f in stored["files"]
        ),
    ]
    sender = parse_address(definition.sender, "sender")
    to = tuple(parse_address(r, f"recipients[{i}]") for i, r in enumerate(definition.recipients))
    built = mime.build(
        mime.Draft(
            sender=dataclasses.replace(sender, display_name=f"{organization} forms"),
            to=to,
            subject=f"Form submission: {definition.title} ({facts.submission_id})",
            text=text,
            attachments=tuple(attachments),
            headers=(("Auto-Submitted", "auto-generated"),),
        ),
        message_id_domain,
    )
    return Submission(
        stream=Stream.PHI,
        source="form",
        mail_from=sender.smtp_addr_spec,
        header_from=sender.smtp_addr_spec,
        recipients=tuple(EnvelopeRecipient(a.smtp_addr_spec, a.ascii_domain, "to") for a in to),
        raw=built.raw,
        message_id_header=built.message_id,
        metadata={"form_id": facts.form_id, "form_submission_id": facts.submission_id},
    )
