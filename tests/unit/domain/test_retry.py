"""Backoff schedule, retry decisions and SMTP/RFC 3463 bounce classification."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.retry import (
    Bounce,
    BounceClass,
    Expire,
    Retry,
    RetryAction,
    RetrySchedule,
    classify,
    is_permanent,
    parse_enhanced_code,
    parse_retry_hint,
)

ACCEPTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NO_JITTER = RetrySchedule(jitter_min=1.0, jitter_max=1.0)


def deferred(code: int | None = 451, enhanced: str | None = "4.3.0", reply: str | None = None) -> Attempt:
    return Attempt(
        recipient="patient@clinic.example",
        status=AttemptStatus.DEFERRED,
        reason="deferred",
        smtp_code=code,
        enhanced_code=enhanced,
        reply=reply,
    )


def failed(code: int | None = 550, enhanced: str | None = "5.1.1", reply: str | None = None) -> Attempt:
    return Attempt(
        recipient="patient@clinic.example",
        status=AttemptStatus.FAILED,
        reason="failed",
        smtp_code=code,
        enhanced_code=enhanced,
        reply=reply,
    )


# --- schedule ---------------------------------------------------------------------


def test_default_schedule_matches_the_research_recommendation() -> None:
    schedule = RetrySchedule()
    assert (schedule.first_delay, schedule.cap, schedule.max_age) == (300, 3600, 259_200)
    assert (schedule.jitter_min, schedule.jitter_max) == (0.8, 1.2)


@pytest.mark.parametrize(
    ("attempt_number", "expected"),
    [(1, 300), (2, 600), (3, 1200), (4, 2400), (5, 3600), (6, 3600), (50, 3600)],
)
def test_delay_doubles_from_first_delay_up_to_the_cap(attempt_number: int, expected: float) -> None:
    assert NO_JITTER.next_delay(attempt_number) == expected


def test_huge_attempt_numbers_stay_at_the_cap_without_overflow() -> None:
    assert NO_JITTER.next_delay(10**6) == 3600


@pytest.mark.parametrize("attempt_number", [1, 2, 3, 8])
def test_jitter_keeps_delay_within_point_eight_to_one_point_two(attempt_number: int) -> None:
    schedule = RetrySchedule()
    base = NO_JITTER.next_delay(attempt_number)
    rng = random.Random(7)
    delays = [schedule.next_delay(attempt_number, rng) for _ in range(500)]
    assert all(0.8 * base <= d <= 1.2 * base for d in delays)
    # Jitter actually spreads the retries rather than returning one value.
    assert max(delays) - min(delays) > 0.2 * base


def test_jitter_is_reproducible_with_a_seeded_rng() -> None:
    schedule = RetrySchedule()
    first = [schedule.next_delay(3, random.Random(42)) for _ in range(3)]
    assert len(set(first)) == 1


def test_jitter_without_an_rng_still_stays_in_bounds() -> None:
    assert 240 <= RetrySchedule().next_delay(1) <= 360


@pytest.mark.parametrize("attempt_number", [0, -1])
def test_attempt_numbers_are_one_based(attempt_number: int) -> None:
    with pytest.raises(ValueError, match="1-based"):
        NO_JITTER.next_delay(attempt_number)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"first_delay": 0},
        {"first_delay": 600, "cap": 300},
        {"max_age": 0},
        {"jitter_min": 0},
        {"jitter_min": 1.3, "jitter_max": 1.2},
    ],
)
def test_nonsensical_schedules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, one per field
        RetrySchedule(**kwargs)


def test_deadline_is_the_earlier_of_lifetime_and_expires_at() -> None:
    schedule = RetrySchedule(max_age=3600)
    assert schedule.deadline(ACCEPTED, None) == ACCEPTED + timedelta(hours=1)
    soon = ACCEPTED + timedelta(minutes=15)
    assert schedule.deadline(ACCEPTED, soon) == soon
    later = ACCEPTED + timedelta(days=9)
    assert schedule.deadline(ACCEPTED, later) == ACCEPTED + timedelta(hours=1)


# --- decide -----------------------------------------------------------------------


def test_deferral_is_retried_after_the_scheduled_delay() -> None:
    now = ACCEPTED + timedelta(minutes=1)
    decision = NO_JITTER.decide(deferred(), 1, ACCEPTED, now, None)
    assert isinstance(decision, Retry)
    assert decision.action is RetryAction.RETRY
    assert decision.delay == 300
    assert decision.at == now + timedelta(seconds=300)


def test_later_deferrals_back_off_further() -> None:
    now = ACCEPTED + timedelta(hours=2)
    decision = NO_JITTER.decide(deferred(), 3, ACCEPTED, now, None)
    assert isinstance(decision, Retry)
    assert decision.at == now + timedelta(seconds=1200)


def test_jittered_retry_time_stays_within_bounds() -> None:
    now = ACCEPTED + timedelta(minutes=1)
    decision = RetrySchedule().decide(deferred(), 1, ACCEPTED, now, None, rng=random.Random(1))
    assert isinstance(decision, Retry)
    assert now + timedelta(seconds=240) <= decision.at <= now + timedelta(seconds=360)


def test_permanent_failure_bounces_with_its_class() -> None:
    decision = NO_JITTER.decide(failed(550, "5.1.1", "550 5.1.1 User unknown"), 1, ACCEPTED, ACCEPTED, None)
    assert decision == Bounce(BounceClass.INVALID_RECIPIENT)
    assert decision.action is RetryAction.BOUNCE


def test_failed_attempt_without_a_reply_still_bounces() -> None:
    decision = NO_JITTER.decide(failed(None, None, None), 1, ACCEPTED, ACCEPTED, None)
    assert decision == Bounce(BounceClass.UNCLASSIFIED)


@pytest.mark.parametrize(
    ("code", "enhanced", "reply"),
    [
        (452, "4.5.3", "452 4.5.3 Too many recipients"),
        (550, "5.5.3", "550 5.5.3 Too many recipients"),
        (552, None, "552 Too many recipients"),
    ],
)
def test_too_many_recipients_is_retried_even_when_marked_failed(
    code: int, enhanced: str | None, reply: str
) -> None:
    decision = NO_JITTER.decide(failed(code, enhanced, reply), 1, ACCEPTED, ACCEPTED, None)
    assert isinstance(decision, Retry)
    assert decision.bounce_class is BounceClass.TOO_MANY_RECIPIENTS


def test_server_hint_in_the_reply_delays_the_retry() -> None:
    attempt = deferred(451, "4.7.1", "451 4.7.1 Greylisted, please try again in 30 minutes")
    decision = NO_JITTER.decide(attempt, 1, ACCEPTED, ACCEPTED, None)
    assert isinstance(decision, Retry)
    assert decision.delay == 1800
    assert decision.bounce_class is BounceClass.RATE_LIMITED


def test_explicit_hint_overrides_the_reply_text() -> None:
    attempt = deferred(451, "4.7.1", "451 4.7.1 try again in 30 minutes")
    decision = NO_JITTER.decide(attempt, 1, ACCEPTED, ACCEPTED, None, hint_seconds=900)
    assert isinstance(decision, Retry)
    assert decision.delay == 900


def test_hint_shorter_than_the_schedule_does_not_hasten_the_retry() -> None:
    attempt = deferred(451, "4.7.1", "451 4.7.1 try again in 10 seconds")
    decision = NO_JITTER.decide(attempt, 2, ACCEPTED, ACCEPTED, None)
    assert isinstance(decision, Retry)
    assert decision.delay == 600


def test_deferral_past_the_lifetime_expires() -> None:
    now = ACCEPTED + timedelta(hours=72, seconds=1)
    decision = NO_JITTER.decide(deferred(), 40, ACCEPTED, now, None)
    assert isinstance(decision, Expire)
    assert decision.action is RetryAction.EXPIRE
    assert decision.bounce_class is BounceClass.MESSAGE_EXPIRED


def test_deferral_exactly_at_the_deadline_expires() -> None:
    now = ACCEPTED + timedelta(hours=72)
    assert isinstance(NO_JITTER.decide(deferred(), 40, ACCEPTED, now, None), Expire)


def test_deferral_past_expires_at_expires_and_keeps_the_last_cause() -> None:
    attempt = deferred(421, "4.7.0", "421 4.7.0 [TSS04] Messages temporarily deferred")
    expires_at = ACCEPTED + timedelta(minutes=10)
    decision = NO_JITTER.decide(attempt, 2, ACCEPTED, ACCEPTED + timedelta(minutes=11), expires_at)
    assert decision == Expire(last_class=BounceClass.RATE_LIMITED)


def test_retry_that_would_land_after_expires_at_expires_now() -> None:
    expires_at = ACCEPTED + timedelta(minutes=4)
    decision = NO_JITTER.decide(deferred(), 1, ACCEPTED, ACCEPTED, expires_at)
    assert isinstance(decision, Expire)


def test_retry_that_fits_before_expires_at_is_scheduled() -> None:
    expires_at = ACCEPTED + timedelta(minutes=6)
    decision = NO_JITTER.decide(deferred(), 1, ACCEPTED, ACCEPTED, expires_at)
    assert isinstance(decision, Retry)


def test_hint_beyond_the_lifetime_expires_instead_of_waiting() -> None:
    attempt = deferred(451, "4.3.0", "451 try again in 100 hours")
    assert isinstance(NO_JITTER.decide(attempt, 1, ACCEPTED, ACCEPTED, None), Expire)


def test_permanent_failure_after_the_deadline_is_a_bounce_not_an_expiry() -> None:
    now = ACCEPTED + timedelta(days=10)
    assert isinstance(NO_JITTER.decide(failed(), 5, ACCEPTED, now, None), Bounce)


def test_delivered_attempts_cannot_be_decided() -> None:
    attempt = Attempt("p@x.example", AttemptStatus.DELIVERED, "delivered", smtp_code=250)
    with pytest.raises(ValueError, match="did not deliver"):
        NO_JITTER.decide(attempt, 1, ACCEPTED, ACCEPTED, None)


def test_attempts_so_far_counts_the_current_attempt() -> None:
    with pytest.raises(ValueError, match=">= 1"):
        NO_JITTER.decide(deferred(), 0, ACCEPTED, ACCEPTED, None)


@pytest.mark.parametrize("which", ["accepted_at", "now", "expires_at"])
def test_naive_datetimes_are_refused(which: str) -> None:
    naive = datetime(2026, 3, 1, 12, 0)  # naive on purpose
    times = {"accepted_at": ACCEPTED, "now": ACCEPTED, "expires_at": ACCEPTED + timedelta(days=1)}
    times[which] = naive
    with pytest.raises(ValueError, match="timezone-aware"):
        NO_JITTER.decide(deferred(), 1, times["accepted_at"], times["now"], times["expires_at"])


# --- retry hints ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "seconds"),
    [
        ("451 4.7.1 Please try again in 60 seconds", 60),
        ("451 Greylisted, try again in 5 minutes", 300),
        ("421 Try again in 1 minute", 60),
        ("450 retry in 30s", 30),
        ("450 please retry after 2 hours", 7200),
        ("451 TRY AGAIN IN 90 SECS", 90),
        ("451 try again in 1.5 min", 90),
        ("451 try in 10 seconds", 10),
    ],
)
def test_retry_hints_are_read_from_reply_text(reply: str, seconds: float) -> None:
    assert parse_retry_hint(reply) == seconds


@pytest.mark.parametrize(
    "reply",
    [
        "451 4.3.0 Try again later",
        "550 5.1.1 User unknown",
        "",
        "451 try again in a few minutes",
        "451 try again in 5 parsecs",
    ],
)
def test_replies_without_a_number_give_no_hint(reply: str) -> None:
    assert parse_retry_hint(reply) is None


# --- enhanced codes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("5.1.1", (5, 1, 1)),
        ("4.7.26", (4, 7, 26)),
        (" 2.0.0 ", (2, 0, 0)),
        ("3.0.0", None),
        ("5.1", None),
        ("5.1.1.1", None),
        ("x.1.1", None),
        ("5.1000.1", None),
        (None, None),
    ],
)
def test_enhanced_codes_parse_per_rfc_3463(text: str | None, parsed: tuple[int, int, int] | None) -> None:
    assert parse_enhanced_code(text) == parsed


# --- permanence -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "enhanced", "permanent"),
    [
        (550, "5.1.1", True),
        (554, None, True),
        (451, "4.3.0", False),
        (421, None, False),
        (452, "4.5.3", False),
        (550, "5.5.3", False),  # too many recipients: transient even as 5xx
        (552, "5.5.3", False),
        (None, "5.1.1", True),
        (None, "4.4.1", False),
        (None, None, False),  # timeouts and resets are bounded by the lifetime
        (550, "4.1.1", True),  # the reply code wins over a mismatched enhanced code
        (451, "5.1.1", False),
        (250, "2.0.0", False),
    ],
)
def test_permanence_follows_the_reply_code_with_the_recipient_limit_exception(
    code: int | None, enhanced: str | None, permanent: bool
) -> None:
    assert is_permanent(code, enhanced) is permanent


def test_552_too_many_recipients_without_enhanced_code_is_transient() -> None:
    assert is_permanent(552, None, reply="552 Too many recipients") is False
    assert is_permanent(552, None, reply="552 Message size exceeds limit") is True


# --- classification ---------------------------------------------------------------


def test_bounce_class_values_are_a_stable_public_vocabulary() -> None:
    assert [c.value for c in BounceClass] == [
        "invalid_recipient",
        "inactive_mailbox",
        "bad_domain",
        "dns_failure",
        "mailbox_full",
        "spam_block",
        "spam_content",
        "policy",
        "authentication_failed",
        "tls_required",
        "too_many_recipients",
        "rate_limited",
        "no_answer",
        "bad_connection",
        "message_expired",
        "unclassified",
    ]


@pytest.mark.parametrize(
    ("code", "enhanced", "reply", "expected"),
    [
        # Precise enhanced codes (RFC 3463 and later registrations).
        (550, "5.1.1", "550 5.1.1 User unknown", BounceClass.INVALID_RECIPIENT),
        (550, "5.1.2", "550 5.1.2 Bad destination system", BounceClass.BAD_DOMAIN),
        (553, "5.1.3", "553 5.1.3 Bad address syntax", BounceClass.INVALID_RECIPIENT),
        (550, "5.1.6", "550 5.1.6 Recipient has moved", BounceClass.INACTIVE_MAILBOX),
        (556, "5.1.10", "556 5.1.10 Recipient address has null MX", BounceClass.BAD_DOMAIN),
        (550, "5.2.1", "550 5.2.1 The email account is disabled", BounceClass.INACTIVE_MAILBOX),
        (452, "4.2.2", "452 4.2.2 The email account is over quota", BounceClass.MAILBOX_FULL),
        (552, "5.2.2", "552 5.2.2 Mailbox full", BounceClass.MAILBOX_FULL),
        (452, "4.3.1", "452 4.3.1 Insufficient system storage", BounceClass.MAILBOX_FULL),
        (552, "5.3.4", "552 5.3.4 Message too big", BounceClass.POLICY),
        (421, "4.4.2", "421 4.4.2 Connection dropped", BounceClass.BAD_CONNECTION),
        (451, "4.4.3", "451 4.4.3 Directory server failure", BounceClass.DNS_FAILURE),
        (451, "4.4.4", "451 4.4.4 Unable to route", BounceClass.DNS_FAILURE),
        (550, "5.4.4", "550 5.4.4 Unable to route", BounceClass.BAD_DOMAIN),
        (421, "4.4.5", "421 4.4.5 Server busy", BounceClass.RATE_LIMITED),
        (554, "5.4.7", "554 5.4.7 Delivery time expired", BounceClass.MESSAGE_EXPIRED),
        (452, "4.5.3", "452 4.5.3 Too many recipients", BounceClass.TOO_MANY_RECIPIENTS),
        (550, "5.5.3", "550 5.5.3 Too many recipients", BounceClass.TOO_MANY_RECIPIENTS),
        (535, "5.7.8", "535 5.7.8 Authentication credentials invalid", BounceClass.AUTHENTICATION_FAILED),
        (530, "5.7.10", "530 5.7.10 Encryption needed", BounceClass.TLS_REQUIRED),
        (538, "5.7.11", "538 5.7.11 Encryption required", BounceClass.TLS_REQUIRED),
        (550, "5.7.23", "550 5.7.23 SPF validation failed", BounceClass.AUTHENTICATION_FAILED),
        (
            550,
            "5.7.26",
            "550 5.7.26 Unauthenticated email is not accepted",
            BounceClass.AUTHENTICATION_FAILED,
        ),
        (550, "5.7.27", "550 5.7.27 Sender address has null MX", BounceClass.AUTHENTICATION_FAILED),
        (421, "4.7.28", "421 4.7.28 Unusual rate of mail", BounceClass.RATE_LIMITED),
        (550, "5.7.30", "550 5.7.30 REQUIRETLS support required", BounceClass.TLS_REQUIRED),
        # A precise code beats a misleading text.
        (550, "5.1.1", "550 5.1.1 User unknown; see our spam policy", BounceClass.INVALID_RECIPIENT),
        # Coarse 5.7.1 is refined by the text ...
        (
            554,
            "5.7.1",
            "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
            BounceClass.SPAM_BLOCK,
        ),
        (
            550,
            "5.7.1",
            "550 5.7.1 Our system has detected that this message is likely unsolicited mail",
            BounceClass.SPAM_CONTENT,
        ),
        (550, "5.7.1", "550 5.7.1 Message rejected: URL listed on SURBL", BounceClass.SPAM_CONTENT),
        (
            550,
            "5.7.1",
            "550 5.7.1 The IP you're using to send mail has a poor reputation",
            BounceClass.SPAM_BLOCK,
        ),
        (550, "5.7.1", "550 5.7.1 Email rejected per DMARC policy", BounceClass.AUTHENTICATION_FAILED),
        (550, "5.7.1", "550 5.7.1 Relaying denied", BounceClass.POLICY),
        # ... and falls back to "policy" when the text says nothing.
        (550, "5.7.1", "550 5.7.1 Go away", BounceClass.POLICY),
        (530, "5.7.0", "530 5.7.0 Must issue a STARTTLS command first", BounceClass.TLS_REQUIRED),
        (
            421,
            "4.7.0",
            "421 4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume",
            BounceClass.RATE_LIMITED,
        ),
        (451, "4.7.1", "451 4.7.1 Greylisted, try again later", BounceClass.RATE_LIMITED),
        # Microsoft's 5.4.1 is a recipient refusal, not "no answer".
        (550, "5.4.1", "550 5.4.1 Recipient address rejected: Access denied", BounceClass.INVALID_RECIPIENT),
        (None, "4.4.1", "Connection timed out", BounceClass.NO_ANSWER),
        (421, "4.4.1", None, BounceClass.NO_ANSWER),
        # X.n.0 "other" codes with a telling text.
        (550, "5.0.0", "550 5.0.0 Mailbox quota exceeded", BounceClass.MAILBOX_FULL),
        (550, "5.2.0", "550 5.2.0 Account suspended", BounceClass.INACTIVE_MAILBOX),
        (550, "5.0.0", "550 5.0.0 Sender address rejected: Domain not found", BounceClass.POLICY),
        (550, "5.0.0", "550 5.0.0 Something odd happened", BounceClass.UNCLASSIFIED),
        # Unknown detail: by subject.
        (550, "5.1.99", "550 5.1.99 ?", BounceClass.INVALID_RECIPIENT),
        (550, "5.6.1", "550 5.6.1 Media not supported", BounceClass.UNCLASSIFIED),
        (550, "5.7.99", "550 5.7.99 ?", BounceClass.POLICY),
        # No enhanced code: read it from the reply, or use the text, then the code.
        (550, None, "550 5.1.1 <p@x.example>: Recipient address rejected", BounceClass.INVALID_RECIPIENT),
        (
            550,
            None,
            "550-5.1.1 The email account that you tried to reach does not exist.",
            BounceClass.INVALID_RECIPIENT,
        ),
        (None, None, "550 5.2.2 mailbox full", BounceClass.MAILBOX_FULL),
        (550, None, "550 No such user here", BounceClass.INVALID_RECIPIENT),
        (550, None, "550 Host not found", BounceClass.BAD_DOMAIN),
        (450, None, "450 Host not found, try again", BounceClass.DNS_FAILURE),
        (554, None, "554 Too many connections from your IP (rate limited)", BounceClass.RATE_LIMITED),
        (None, None, "Connection refused", BounceClass.NO_ANSWER),
        (None, None, "Connection reset by peer", BounceClass.BAD_CONNECTION),
        (551, None, "551 User not local", BounceClass.INVALID_RECIPIENT),
        (553, None, "553 Requested action not taken", BounceClass.INVALID_RECIPIENT),
        (535, None, "535 Nope", BounceClass.AUTHENTICATION_FAILED),
        (550, None, "550 Requested action not taken: mailbox unavailable", BounceClass.UNCLASSIFIED),
        (554, None, None, BounceClass.UNCLASSIFIED),
        (None, None, None, BounceClass.UNCLASSIFIED),
        (451, "garbage", "451 Something", BounceClass.UNCLASSIFIED),
    ],
)
def test_classification_uses_code_enhanced_code_then_text(
    code: int | None, enhanced: str | None, reply: str | None, expected: BounceClass
) -> None:
    assert classify(code, enhanced, reply) is expected
