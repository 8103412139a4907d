"""RFC 3464 delivery status notifications that never echo message content."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from typing import Any

import pytest

from sealmail.domain.dsn import SAFE_HEADERS, build_dsn

SECRET_SUBJECT = "HIV test results for Jane Roe"
SECRET_BODY = "Dear Jane, your viral load is 42 copies/mL."
ORIGINAL = (
    b"Received: from submit.clinic.example by mta.sealmail.example\r\n"
    b"From: Dr. Lee <lee@clinic.example>\r\n"
    b"To: Jane Roe <jane@patient.example>,\r\n"
    b"\tJohn Roe <john@patient.example>\r\n"
    b"Cc: other-patient@patient.example\r\n"
    b"Bcc: hidden@patient.example\r\n"
    b"Subject: " + SECRET_SUBJECT.encode() + b"\r\n"
    b"Message-ID: <orig-1@clinic.example>\r\n"
    b"Date: Sun, 01 Mar 2026 12:00:00 +0000\r\n"
    b"X-Patient-MRN: 123456\r\n"
    b"\r\n" + SECRET_BODY.encode() + b"\r\n"
    b"Subject: a body line that looks like a header\r\n"
)
ARRIVAL = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
NOW = datetime(2026, 3, 1, 12, 7, tzinfo=UTC)


def dsn(**overrides: Any) -> bytes:
    kwargs: dict[str, Any] = {
        "reporting_mta": "mta.sealmail.example",
        "original_headers": ORIGINAL,
        "recipient": "jane@patient.example",
        "status": "5.1.1",
        "diagnostic": "550 5.1.1 <jane@patient.example>: Recipient address rejected",
        "remote_mta": "mx1.patient.example",
        "arrival_date": ARRIVAL,
        "dsn_from": "Mail Delivery System <MAILER-DAEMON@mta.sealmail.example>",
        "to": "lee@clinic.example",
        "date": NOW,
        "message_id": "<dsn-1@mta.sealmail.example>",
    }
    kwargs.update(overrides)
    return build_dsn(**kwargs)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def parts(raw: bytes) -> list[EmailMessage]:
    return list(parse(raw).iter_parts())  # type: ignore[arg-type]  # parts are EmailMessages


def status_blocks(raw: bytes) -> list[Message]:
    payload = parts(raw)[1].get_payload()
    assert isinstance(payload, list)
    blocks = [block for block in payload if isinstance(block, Message)]
    assert len(blocks) == len(payload)
    return blocks


def test_dsn_is_a_multipart_report_of_delivery_status() -> None:
    message = parse(dsn())
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in message.iter_parts()] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert message["MIME-Version"] == "1.0"


def test_top_level_headers_address_the_original_sender() -> None:
    message = parse(dsn())
    assert message["To"] == "lee@clinic.example"
    assert message["From"].addresses[0].addr_spec == "MAILER-DAEMON@mta.sealmail.example"
    assert message["Message-ID"] == "<dsn-1@mta.sealmail.example>"
    assert message["Date"].datetime == NOW
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Subject"] == "Undelivered Mail Returned to Sender"


def test_per_message_fields_name_the_reporting_mta_and_arrival() -> None:
    per_message = status_blocks(dsn())[0]
    assert per_message["Reporting-MTA"] == "dns; mta.sealmail.example"
    assert per_message["Arrival-Date"] == "Sun, 01 Mar 2026 12:00:05 +0000"
    assert per_message["Original-Envelope-Id"] is None


def test_per_recipient_fields_report_the_failure() -> None:
    blocks = status_blocks(dsn(last_attempt_date=NOW - timedelta(minutes=1)))
    assert len(blocks) == 2
    recipient = blocks[1]
    assert recipient["Final-Recipient"] == "rfc822; jane@patient.example"
    assert recipient["Action"] == "failed"
    assert recipient["Status"] == "5.1.1"
    assert recipient["Remote-MTA"] == "dns; mx1.patient.example"
    assert recipient["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <jane@patient.example>: Recipient address rejected"
    )
    assert recipient["Last-Attempt-Date"] == "Sun, 01 Mar 2026 12:06:00 +0000"
    assert recipient["Original-Recipient"] is None


def test_original_subject_and_body_never_appear() -> None:
    raw = dsn()
    assert SECRET_SUBJECT.encode() not in raw
    assert b"HIV" not in raw
    assert SECRET_BODY.encode() not in raw
    assert b"viral load" not in raw
    assert b"looks like a header" not in raw
    for part in parts(raw):
        assert "HIV" not in part.as_string()


def test_headers_part_holds_only_the_safe_subset() -> None:
    headers_part = parts(dsn())[2]
    text = headers_part.get_content()
    names = [line.split(":", 1)[0] for line in text.splitlines() if line]
    assert names == list(SAFE_HEADERS)
    assert "Message-ID: <orig-1@clinic.example>" in text
    assert "Date: Sun, 01 Mar 2026 12:00:00 +0000" in text
    assert "From: Dr. Lee <lee@clinic.example>" in text
    # Folded To is unfolded onto one line (RFC 5322 §2.2.3).
    assert "To: Jane Roe <jane@patient.example>, John Roe <john@patient.example>" in text


@pytest.mark.parametrize(
    "leak",
    [b"Subject", b"hidden@patient.example", b"other-patient", b"X-Patient-MRN", b"123456", b"submit.clinic"],
)
def test_bcc_cc_trace_and_custom_headers_are_not_echoed(leak: bytes) -> None:
    # The DSN's own Subject header is fixed text; the original's never appears.
    raw = dsn()
    if leak == b"Subject":
        assert raw.count(b"Subject:") == 1
        assert parse(raw)["Subject"] == "Undelivered Mail Returned to Sender"
    else:
        assert leak not in raw


def test_header_mapping_input_is_filtered_case_insensitively() -> None:
    raw = dsn(
        original_headers={
            "message-id": "<m@x.example>",
            "FROM": "a@x.example",
            "Subject": SECRET_SUBJECT,
        }
    )
    text = parts(raw)[2].get_content()
    assert text.splitlines() == ["Message-ID: <m@x.example>", "From: a@x.example"]
    assert SECRET_SUBJECT.encode() not in raw


def test_header_mapping_values_cannot_inject_lines() -> None:
    with pytest.raises(ValueError, match="single line"):
        dsn(original_headers={"From": "a@x.example\r\nSubject: injected"})


def test_human_readable_part_explains_without_content() -> None:
    text = parts(dsn())[0].get_content()
    assert "mta.sealmail.example" in text
    assert "jane@patient.example" in text
    assert "5.1.1" in text
    assert "refused it permanently" in text
    assert "original message is not included" in text


def test_expired_recipient_gets_an_expiry_explanation() -> None:
    raw = dsn(expired=True, status="4.4.7", diagnostic=None, remote_mta=None)
    message = parse(raw)
    assert message["Subject"] == "Delivery expired: message not delivered"
    assert "delivery time ran out" in parts(raw)[0].get_content()
    recipient = status_blocks(raw)[1]
    assert recipient["Action"] == "failed"
    assert recipient["Status"] == "4.4.7"
    assert recipient["Remote-MTA"] is None
    assert recipient["Diagnostic-Code"] is None


def test_multiline_remote_reply_is_flattened_into_one_diagnostic_line() -> None:
    raw = dsn(diagnostic="550-5.7.1 Message rejected\r\n550-5.7.1 see https://help\r\n550 5.7.1 thanks")
    assert status_blocks(raw)[1]["Diagnostic-Code"] == (
        "smtp; 550 5.7.1 Message rejected see https://help thanks"
    )


def test_non_ascii_recipient_uses_rfc_6533_utf8_xtext() -> None:
    raw = dsn(recipient="jörg+x@bücher.example", original_recipient="jörg@bücher.example")
    recipient = status_blocks(raw)[1]
    assert recipient["Final-Recipient"] == r"utf-8; j\x{F6}rg\x{2B}x@b\x{FC}cher.example"
    assert recipient["Original-Recipient"] == r"utf-8; j\x{F6}rg@b\x{FC}cher.example"
    # The human part is quoted-printable, so the DSN stays 7-bit.
    assert all(byte < 0x80 for byte in raw)
    assert "jörg+x@bücher.example" in parts(raw)[0].get_content()


def test_envelope_id_is_reported_when_given() -> None:
    assert status_blocks(dsn(envelope_id="QQ314159"))[0]["Original-Envelope-Id"] == "QQ314159"


def test_output_is_deterministic_and_crlf_terminated() -> None:
    first, second = dsn(), dsn()
    assert first == second
    assert b"\r\n" in first
    assert b"\n" not in first.replace(b"\r\n", b"")


def test_long_fields_are_folded_within_78_characters() -> None:
    to = ", ".join(f"Patient {i} <p{i}@patient.example>" for i in range(40))
    raw = dsn(
        original_headers={"To": to},
        diagnostic="550 5.7.1 " + "word " * 80,
    )
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    diagnostic = status_blocks(raw)[1]["Diagnostic-Code"]
    assert diagnostic.startswith("smtp; 550 5.7.1 word word")
    assert "p39@patient.example" in parts(raw)[2].get_content()


def test_overlong_diagnostics_are_truncated() -> None:
    raw = dsn(diagnostic="550 5.7.1 " + "x " * 2000)
    diagnostic = status_blocks(raw)[1]["Diagnostic-Code"]
    assert diagnostic.endswith("...")
    assert len(diagnostic) < 1000


def test_different_dsns_get_different_boundaries() -> None:
    one = parse(dsn()).get_boundary()
    two = parse(dsn(message_id="<dsn-2@mta.sealmail.example>")).get_boundary()
    assert one
    assert two
    assert one != two


@pytest.mark.parametrize("status", ["2.0.0", "5.1", "550", "", "5.1.1 extra", "5.\u0663.\u0661"])
def test_status_must_be_an_rfc_3463_failure_code(status: str) -> None:
    with pytest.raises(ValueError, match="RFC 3463"):
        dsn(status=status)


@pytest.mark.parametrize(
    "field", ["recipient", "to", "dsn_from", "reporting_mta", "message_id", "remote_mta", "envelope_id"]
)
def test_crlf_in_any_header_input_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match="single line"):
        dsn(**{field: "x@y.example\r\nBcc: attacker@evil.example"})


@pytest.mark.parametrize("field", ["arrival_date", "date", "last_attempt_date"])
def test_naive_datetimes_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        # A naive datetime is the point of the test.
        dsn(**{field: datetime(2026, 3, 1, 12, 0)})
