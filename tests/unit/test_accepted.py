"""The typed result of accepting a message, and accept's validation step."""

from __future__ import annotations

import pytest

from sealmail.domain.statuses import MessageStatus, RecipientStatus
from sealmail.domain.tls_policy import Stream
from sealmail.errors import ValidationFailed
from sealmail.messages import accept
from sealmail.messages.submission import EnvelopeRecipient, Submission


def _sub(**kw: object) -> Submission:
    base: dict[str, object] = {
        "stream": Stream.TRANSACTIONAL,
        "source": "api",
        "mail_from": "a@clinic.example",
        "header_from": "a@clinic.example",
        "recipients": (EnvelopeRecipient("p@example.org", "example.org", "to"),),
        "raw": b"Subject: x\r\n\r\nhi\r\n",
        "message_id_header": "<1@clinic.example>",
    }
    base.update(kw)
    return Submission(**base)  # type: ignore[arg-type]


def test_accepted_round_trips_through_the_stored_body() -> None:
    result = accept.Accepted(
        id="msg_1",
        status=MessageStatus.QUEUED,
        stream="transactional",
        message_id_header="<1@clinic.example>",
        recipients=(
            accept.AcceptedRecipient("rcp_1", "p@example.org", RecipientStatus.QUEUED),
            accept.AcceptedRecipient("rcp_2", "q@example.org", RecipientStatus.REJECTED),
        ),
    )
    body = result.to_record()
    assert body["status"] == "queued"
    assert body["recipients"][1] == {"id": "rcp_2", "email": "q@example.org", "status": "rejected"}
    assert accept.Accepted.from_record(body) == result


def test_the_api_body_is_the_response_model_without_building_it() -> None:
    import orjson
    from starlette.responses import JSONResponse

    from sealmail.messages.schemas import AcceptedOut

    result = accept.Accepted(
        id="msg_1",
        status=MessageStatus.QUEUED,
        stream=Stream.PHI,
        message_id_header="<1@clinic.example>",
        recipients=(
            accept.AcceptedRecipient("rcp_1", "pé@exämple.org", RecipientStatus.QUEUED),
            accept.AcceptedRecipient("rcp_2", "q@example.org", RecipientStatus.REJECTED),
        ),
    )
    model = AcceptedOut.from_result(result).body()
    assert AcceptedOut.body_of(result) == model
    assert list(AcceptedOut.body_of(result)) == list(model)
    # The same bytes as the JSONResponse it replaces.
    assert orjson.dumps(AcceptedOut.body_of(result)) == JSONResponse(model).body


def test_validate_refuses_what_no_screening_could_fix() -> None:
    accept.validate(_sub(), system=False, broadcast_refusal=None)
    with pytest.raises(ValidationFailed):
        accept.validate(_sub(recipients=()), system=False, broadcast_refusal=None)
    with pytest.raises(ValidationFailed):
        accept.validate(_sub(stream=Stream.BROADCAST), system=False, broadcast_refusal="no https base URL")
    accept.validate(_sub(stream=Stream.BROADCAST), system=True, broadcast_refusal="no https base URL")
    with pytest.raises(ValidationFailed):
        accept.validate(
            _sub(stream=Stream.BROADCAST, bypass_suppressions=True), system=False, broadcast_refusal=None
        )


def test_recipient_rows_keep_one_row_per_address() -> None:
    from datetime import UTC, datetime

    from sealmail.tenancy.service import Principal

    sub = _sub(
        recipients=(
            EnvelopeRecipient("P@example.org", "example.org", "to"),
            EnvelopeRecipient("p@example.org", "example.org", "cc"),
        )
    )
    rows = accept.recipient_rows(
        Principal("ten_1", "key_1", frozenset()), "msg_1", sub, True, datetime.now(UTC)
    )
    assert [r["status"] for r in rows] == [RecipientStatus.QUARANTINED]
