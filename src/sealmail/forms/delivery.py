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
from sealmail.domain.addresses import InvalidAddress, parse_address
from sealmail.domain.secureline import Protection
from sealmail.domain.tags import SystemTag
from sealmail.domain.tls_policy import Stream
from sealmail.forms import rendering
from sealmail.forms.definition import FormDefinition
from sealmail.messages.service import EnvelopeRecipient, Submission


def _facts(stored: dict[str, Any], organization: str) -> rendering.SubmissionFacts:
    doc = stored["document"]
    return rendering.SubmissionFacts(
        doc["submission_id"],
        doc["form_id"],
        int(doc["form_version"]),
        datetime.fromisoformat(doc["received_at"]),
        organization,
    )


def submitter_address(definition: FormDefinition, answers: dict[str, Any]) -> str:
    """The first email field's answer: where the submitter's copy goes ("" when none)."""
    return next(
        (str(answers[f.name]) for f in definition.fields if f.type == "email" and answers.get(f.name)), ""
    )


def build_copy(
    definition: FormDefinition, stored: dict[str, Any], organization: str, message_id_domain: str
) -> Submission | None:
    """The submitter's copy, when the form offers one and they gave an address.

    Tagged ``form-copy``, so SecureLine holds it in the portal whatever the address could
    take (``delivery.policy``), with ``protection`` secure: never plain, never TLS alone.
    """
    if not definition.submitter_copy:
        return None
    try:
        to = parse_address(submitter_address(definition, stored["document"]["answers"]), "to")
    except InvalidAddress:
        return None
    facts = _facts(stored, organization)
    text = rendering.to_text(facts, definition, stored["document"]["answers"])
    sender = parse_address(definition.sender, "sender")
    built = mime.build(
        mime.Draft(
            sender=dataclasses.replace(sender, display_name=f"{organization} forms"),
            to=(to,),
            subject=f"Your copy: {definition.title}",
            text=f"This is a copy of the form you sent to {organization}.\n\n{text}",
            attachments=(mime.Attachment("submission.pdf", "application/pdf", rendering.to_pdf(text)),),
            headers=(("Auto-Submitted", "auto-generated"),),
        ),
        message_id_domain,
    )
    return Submission(
        stream=Stream.PHI,
        source="form",
        mail_from=sender.smtp_addr_spec,
        header_from=sender.smtp_addr_spec,
        recipients=(EnvelopeRecipient(to.smtp_addr_spec, to.ascii_domain, "to"),),
        raw=built.raw,
        message_id_header=built.message_id,
        tags=(SystemTag.FORM_COPY,),
        metadata={"form_id": facts.form_id, "form_submission_id": facts.submission_id},
        protection=Protection.SECURE,
    )


def build_message(
    definition: FormDefinition, stored: dict[str, Any], organization: str, message_id_domain: str
) -> Submission:
    doc = stored["document"]
    facts = _facts(stored, organization)
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
