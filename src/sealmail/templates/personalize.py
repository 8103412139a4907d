"""From one recipient's rendered content to a validated ``Submission``.

Compose is the same function ``POST /v1/messages`` uses, so a personalized message is
checked exactly like a single one (CR/LF in a rendered subject, a bad address, …).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from sealmail.errors import ValidationFailed
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn
from sealmail.messages.service import Submission
from sealmail.templates.render import Compiled, Rendered, RenderFailure


def personalize(
    base: MessageIn,
    content: Rendered,
    *,
    to: list[str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> MessageIn:
    update: dict[str, Any] = {"subject": content.subject, "html": content.html, "text": content.text}
    if to is not None:
        update["to"] = to
    if metadata:
        update["metadata"] = {**base.metadata, **metadata}
    return base.model_copy(update=update)


def render_or_fail(compiled: Compiled, variables: Mapping[str, Any]) -> Rendered:
    """Render every part, or raise the recipient's ``ValidationFailed``."""
    result = compiled.render(variables)
    if isinstance(result, RenderFailure):
        raise ValidationFailed([result.as_error()], detail=f"render failed: {result.message}")
    return result


def submission(message: MessageIn, message_id_domain: str, max_recipients: int) -> Submission:
    return compose.from_message(message, message_id_domain, max_recipients)


def validation_failed(exc: ValidationError, prefix: str = "") -> ValidationFailed:
    """Pydantic's errors in the catalogue's shape: ``{"field": "a.b", "message": ...}``."""
    errors = [
        {"field": prefix + ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return ValidationFailed(errors)
