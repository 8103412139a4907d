"""The pure parts of the suppression rules: what an outcome does, when an upsert writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.retry import classify
from sealmail.suppressions import service as sp
from sealmail.suppressions.export import csv_line
from sealmail.suppressions.service import SuppressionReason as R

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def bounced(code: int, enhanced: str, reply: str = "no") -> tuple[R, timedelta | None] | None:
    a = Attempt("x@example.net", AttemptStatus.FAILED, "rejected", smtp_code=code, enhanced_code=enhanced)
    return sp.outcome_rule("bounced", str(classify(code, enhanced, reply)), a.reason, 1, replied=True)


@pytest.mark.parametrize("enhanced", ["5.1.1", "5.1.2", "5.1.10", "5.1.3", "5.2.1"])
def test_bad_mailbox_or_domain_bounces_suppress_for_good(enhanced: str) -> None:
    assert bounced(550, enhanced) == (R.HARD_BOUNCE, None)


@pytest.mark.parametrize(
    ("enhanced", "reply"),
    [
        ("5.7.1", "Message rejected as spam"),
        ("5.7.1", "Rejected by policy"),
        ("5.7.26", "DMARC policy"),
        ("5.1.7", "bad sender address syntax"),
        ("5.1.8", "sender domain does not exist"),
        ("5.2.2", "mailbox full"),
        ("5.3.4", "message too big"),
    ],
)
def test_sender_side_and_other_permanent_refusals_do_not_suppress(enhanced: str, reply: str) -> None:
    assert bounced(550, enhanced, reply) is None


def test_the_attempt_reason_counts_only_without_a_server_reply() -> None:
    # smtp_client names every 5.1.x refusal "invalid_recipient", 5.1.7/5.1.8 included.
    assert sp.outcome_rule("bounced", "policy", "invalid_recipient", 1, replied=True) is None
    assert sp.outcome_rule("bounced", "unclassified", "null_mx", 1, replied=False) == (R.HARD_BOUNCE, None)
    assert sp.outcome_rule("bounced", "unclassified", "bad_domain", 1, replied=False) == (R.HARD_BOUNCE, None)
    assert sp.outcome_rule("bounced", "tls_required", "tls_required", 1, replied=False) is None


def test_expiry_suppresses_softly_only_after_repeated_failures_on_the_recipients_side() -> None:
    ttl = sp.SOFT_BOUNCE_TTL
    assert ttl == timedelta(days=30)
    many = sp.SOFT_BOUNCE_MIN_ATTEMPTS
    assert sp.outcome_rule("expired", "mailbox_full", "deferred", many, replied=True) == (R.SOFT_BOUNCE, ttl)
    assert sp.outcome_rule("expired", "mailbox_full", "deferred", many - 1, replied=True) is None
    for sender_side in ("tls_required", "spam_block", "policy", "rate_limited"):
        assert sp.outcome_rule("expired", sender_side, "deferred", many, replied=True) is None


def test_deliveries_and_deferrals_never_add_an_entry() -> None:
    assert sp.outcome_rule("delivered", None, "delivered", 1, replied=True) is None
    assert sp.outcome_rule("deferred", "invalid_recipient", "x", 9, replied=True) is None


def test_an_active_entry_is_only_rewritten_when_the_new_one_says_more() -> None:
    later, sooner = NOW + timedelta(days=9), NOW + timedelta(days=1)
    # Same reason: only a later (or no) expiry is news.
    assert not sp._changes("manual", None, R.MANUAL, None, NOW)
    assert not sp._changes("manual", later, R.MANUAL, sooner, NOW)
    assert sp._changes("manual", sooner, R.MANUAL, later, NOW)
    assert sp._changes("manual", sooner, R.MANUAL, None, NOW)
    # A soft bounce never weakens a stronger entry; anything else may replace it.
    assert not sp._changes("hard_bounce", None, R.SOFT_BOUNCE, later, NOW)
    assert sp._changes("soft_bounce", later, R.HARD_BOUNCE, None, NOW)
    # An expired entry is re-activated by any write.
    assert sp._changes("hard_bounce", NOW - timedelta(seconds=1), R.SOFT_BOUNCE, later, NOW)


def test_star_and_the_exact_stream_match_other_streams_do_not() -> None:
    entries = {"broadcast": R.UNSUBSCRIBE}
    assert sp.match(entries, "broadcast") is R.UNSUBSCRIBE
    assert sp.match(entries, "phi") is None
    assert sp.match({"*": R.HARD_BOUNCE, "phi": R.MANUAL}, "phi") is R.HARD_BOUNCE
    assert sp.match(None, "phi") is None


def test_addresses_compare_lower_cased_and_trimmed() -> None:
    assert sp.normalize("  Jane.Doe@Example.NET ") == "jane.doe@example.net"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t"])
def test_csv_cells_a_spreadsheet_would_evaluate_are_quoted(start: str) -> None:
    assert csv_line([f"{start}x@example.net", "*"]).startswith(f"'{start}x@example.net")
    assert csv_line(["a@example.net", "*"]) == "a@example.net,*\r\n"


def test_unknown_streams_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown stream"):
        sp._check("marketing", R.MANUAL)
