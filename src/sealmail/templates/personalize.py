"""From one recipient's rendered content to a validated ``Submission``.

Compose is the same function ``POST /v1/messages`` uses, so a personalized message is
checked exactly like a single one (CR/LF in a rendered subject, a bad address, …).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from sealmail.errors import ValidationFailed
from sealmail.messages import compose
from sealmail.messages.outgoing import MessageFields, MessageSpec
from sealmail.messages.service import Submission
from sealmail.templates.render import Compiled, Rendered, RenderFailure


def personalize(
    base: MessageFields,
    content: Rendered,
    *,
    to: list[str] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> MessageSpec:
    message = MessageSpec.of(base)
    update: dict[str, Any] = {"subject": content.subject, "html": content.html, "text": content.text}
    if to is not None:
        update["to"] = tuple(to)
    if metadata:
        update["metadata"] = {**message.metadata, **metadata}
    return dataclasses.replace(message, **update)


def render_or_fail(compiled: Compiled, variables: Mapping[str, Any]) -> Rendered:
    """Render every part, or raise the recipient's ``ValidationFailed``."""
    result = compiled.render(variables)
    if isinstance(result, RenderFailure):
        raise ValidationFailed([result.as_error()], detail=f"render failed: {result.message}")
    return result


def submission(message: MessageFields, message_id_domain: str, max_recipients: int) -> Submission:
    return compose.from_message(message, message_id_domain, max_recipients)
