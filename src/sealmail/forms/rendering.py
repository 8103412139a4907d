"""A submission as the recipients read it: structured JSON, readable text, a PDF.

The JSON document is the record (``sealmail.form-submission/1``); the text and the PDF
are renderings of it for people.  Labels come from the form version the submitter saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sealmail.forms import pdf
from sealmail.forms.definition import FormDefinition

SCHEMA = "sealmail.form-submission/1"


@dataclass(frozen=True, slots=True)
class SubmissionFacts:
    submission_id: str
    form_id: str
    version: int
    received_at: datetime
    organization: str


def document(facts: SubmissionFacts, definition: FormDefinition, answers: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "submission_id": facts.submission_id,
        "form_id": facts.form_id,
        "form_version": facts.version,
        "form_title": definition.title,
        "received_at": facts.received_at.isoformat(),
        "answers": answers,
    }


def to_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=False).encode()


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dict):
        if "typed_name" in value:
            return f"{value['typed_name']} (signed {value['signed_at']} from {value['ip']})"
        if "statement" in value:
            return f"Agreed at {value['at']}: {value['statement']}"
        if "filename" in value:
            return f"{value['filename']} ({value['media_type']}, {value['size']} bytes, attached)"
    return str(value)


def to_text(facts: SubmissionFacts, definition: FormDefinition, answers: dict[str, Any]) -> str:
    lines = [
        f"{definition.title}",
        f"Submitted to {facts.organization} on {facts.received_at:%Y-%m-%d %H:%M} UTC",
        f"Reference: {facts.submission_id} (form {facts.form_id}, version {facts.version})",
        "",
    ]
    for f in definition.fields:
        if f.name in answers:
            value = _show(answers[f.name])
            lines.append(f"{f.label}:")
            lines.extend(f"    {line}" for line in value.splitlines() or [""])
    lines += ["", "The structured record is attached as submission.json."]
    return "\n".join(lines) + "\n"


def to_pdf(text: str) -> bytes:
    return pdf.render(text)
