"""Parsing inbound DSNs (RFC 3464) and ARF reports (RFC 5965) of the shapes MTAs send."""

from __future__ import annotations

import time

from tests.unit.bounces.hostile import nested_comment_dsn, semicolon_dsn
from tests.unit.bounces.samples import (
    TRACE,
    arf_report,
    exchange_ndr,
    gmail_delayed,
    postfix_dsn,
    qmail_bounce,
    vacation_reply,
)

from sealmail.domain.reports import MAX_PARSE_BYTES, Arf, Dsn, Unrecognized, parse


def test_postfix_dsn_gives_action_status_recipient_diagnostic_and_remote_mta() -> None:
    report = parse(postfix_dsn(trace_id="msg_7"), trace_header=TRACE, null_sender=True)
    assert isinstance(report, Dsn)
    assert report.reporting_mta == "mx1.example.net"
    assert not report.heuristic
    [block] = report.recipients
    assert block.action == "failed"
    assert block.status == "5.1.1"
    assert block.final_recipient == "patient@example.net"
    assert block.original_recipient == "patient@example.net"
    assert block.remote_mta == "mailstore.example.net"
    assert block.diagnostic is not None and block.diagnostic.startswith("550 5.1.1 <patient@example.net>")
    assert report.original is not None
    assert report.original.trace_id == "msg_7"
    assert report.original.return_path == "b+rcp_x.y@bounces.clinic.example"
    assert report.original.to == ("patient@example.net",)


def test_exchange_ndr_unfolds_the_diagnostic_and_lower_cases_the_recipient() -> None:
    report = parse(exchange_ndr(), trace_header=TRACE)
    assert isinstance(report, Dsn)
    [block] = report.recipients
    assert (block.action, block.status) == ("failed", "5.2.2")
    assert block.final_recipient == "patient@example.net"
    assert block.diagnostic is not None
    assert "\n" not in block.diagnostic and "QuotaExceededException" in block.diagnostic
    assert block.remote_mta == "DM6PR01MB0002.namprd01.prod.outlook.com"


def test_gmail_delay_with_headers_only_original() -> None:
    report = parse(gmail_delayed(), trace_header=TRACE)
    assert isinstance(report, Dsn)
    [block] = report.recipients
    assert (block.action, block.status) == ("delayed", "4.4.1")
    assert report.original is not None
    assert report.original.return_path == "b+rcp_x.y@bounces.clinic.example"


def test_arf_example_of_rfc_5965_appendix_b() -> None:
    report = parse(arf_report(trace_id="msg_9", return_path="b+rcp_a.b@bounces.x"), trace_header=TRACE)
    assert isinstance(report, Arf)
    assert report.feedback_type == "abuse"
    assert report.user_agent == "SomeGenerator/1.0"
    assert report.original_mail_from == "somespammer@example.net"
    assert report.original_rcpt_to == ("user@example.com",)
    assert report.original is not None
    assert report.original.trace_id == "msg_9"
    assert report.original.return_path == "b+rcp_a.b@bounces.x"


def test_plain_text_bounce_from_a_mailer_daemon_is_read_heuristically() -> None:
    report = parse(qmail_bounce(), trace_header=TRACE)
    assert isinstance(report, Dsn)
    assert report.heuristic
    [block] = report.recipients
    assert (block.action, block.status) == ("failed", "5.1.1")
    assert block.diagnostic == "Remote host said: 550 5.1.1 No such user"


def test_vacation_reply_is_never_a_bounce_even_with_a_code_like_date() -> None:
    assert parse(vacation_reply(), trace_header=TRACE, null_sender=True) == Unrecognized("auto_reply")


def test_ordinary_mail_is_not_a_report() -> None:
    raw = b"From: someone@example.org\r\nSubject: hi\r\n\r\nSee 5.1.1 in the manual.\r\n"
    assert parse(raw, trace_header=TRACE) == Unrecognized("not_a_report")


def test_garbage_and_truncated_reports_never_raise() -> None:
    assert isinstance(parse(b"\x00\xff" * 100, trace_header=TRACE), Unrecognized)
    whole = postfix_dsn()
    cut = whole[: whole.index(b"Action:")]
    assert parse(cut, trace_header=TRACE) == Unrecognized("unparsable")


def test_only_the_first_megabyte_is_parsed() -> None:
    big = postfix_dsn().replace(b"Your results are ready.", b"x" * (2 * MAX_PARSE_BYTES))
    report = parse(big, trace_header=TRACE)
    assert isinstance(report, Dsn)
    assert report.recipients[0].status == "5.1.1"


def test_subject_and_body_of_the_original_are_not_kept() -> None:
    report = parse(postfix_dsn(), trace_header=TRACE)
    assert "Lab results" not in repr(report)
    assert "Your results" not in repr(report)


def test_a_report_the_stdlib_cannot_read_is_unparsable_never_an_exception() -> None:
    # Nested comments make email.utils recurse past the limit: an exception here was a 451
    # to the sending MTA, which retries the same bytes for days.
    report = parse(nested_comment_dsn("b+x.y@bounces.clinic.example"), trace_header=TRACE, null_sender=True)
    assert report == Unrecognized("unparsable")


def test_a_parameter_field_of_semicolons_is_unparsable_at_once() -> None:
    started = time.perf_counter()
    report = parse(semicolon_dsn("b+x.y@bounces.clinic.example"), trace_header=TRACE, null_sender=True)
    assert time.perf_counter() - started < 1.0
    assert report == Unrecognized("unparsable")
    # The same report with a handful of parameters is still read.
    fine = semicolon_dsn("b+x.y@bounces.clinic.example", lines=0)
    assert isinstance(parse(fine, trace_header=TRACE, null_sender=True), Dsn)
