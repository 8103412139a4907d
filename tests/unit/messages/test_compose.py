"""Composing an API message: what ``compose.from_message`` refuses before building MIME."""

from __future__ import annotations

import email.policy
from email import message_from_bytes

import pytest

from sealmail.errors import ValidationFailed
from sealmail.messages import compose
from sealmail.messages.schemas import MessageIn


@pytest.mark.parametrize(
    "subject", ["x\x0bX-Injected : yes", "a\x0cb", "a\x1cBcc: e@x.example", "a\x1fb", "a\x7fb"]
)
def test_a_subject_with_control_characters_is_refused_not_folded_into_a_header(subject: str) -> None:
    body = MessageIn.model_validate(
        {"from": "lee@clinic.example", "to": ["pat@dest.example"], "subject": subject, "text": "hi"}
    )
    with pytest.raises(ValidationFailed) as caught:
        compose.from_message(body, "ids.example", 50)
    assert str(caught.value) == "subject: must not contain control characters"


def test_a_subject_with_a_tab_or_non_ascii_is_kept() -> None:
    body = MessageIn.model_validate(
        {
            "from": "lee@clinic.example",
            "to": ["pat@dest.example"],
            "subject": "Lab\tresults für Zoë",
            "text": "hi",
        }
    )
    raw = compose.from_message(body, "ids.example", 50).raw
    assert message_from_bytes(raw, policy=email.policy.default)["Subject"] == "Lab\tresults für Zoë"
