"""Retry schedule, Retry-After and disable decisions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from sealmail.webhooks.policy import (
    MAX_ATTEMPTS,
    RETRY_AFTER_CAP,
    SCHEDULE,
    DeliveryVerdict,
    DisablePolicy,
    decide,
    parse_retry_after,
    should_disable,
)

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def _decide(attempt: int, status: int | None = 500, retry_after: str | None = None, r: float = 0.5):  # type: ignore[no-untyped-def]
    return decide(
        attempts_made=attempt, status=status, error=None, retry_after=retry_after, now=NOW, rand=lambda: r
    )


def test_schedule_is_the_standard_webhooks_three_day_example() -> None:
    assert [int(s.total_seconds()) for s in SCHEDULE] == [
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        50400,
        72000,
        86400,
    ]
    assert timedelta(hours=75) < sum(SCHEDULE, timedelta()) < timedelta(hours=76)


@pytest.mark.parametrize("attempt", range(1, MAX_ATTEMPTS))
def test_each_retry_waits_its_step_within_ten_percent_jitter(attempt: int) -> None:
    step = SCHEDULE[attempt - 1]
    low, high = _decide(attempt, r=0.0), _decide(attempt, r=0.999999)
    assert low.outcome is DeliveryVerdict.RETRY
    assert low.next_attempt_at == NOW + step * 0.9
    assert high.next_attempt_at is not None and NOW + step * 1.09 < high.next_attempt_at <= NOW + step * 1.1


def test_the_last_attempt_fails_the_delivery() -> None:
    assert _decide(MAX_ATTEMPTS).outcome is DeliveryVerdict.FAILED


def test_2xx_delivers_and_410_is_gone_and_3xx_is_a_failure() -> None:
    assert _decide(1, 200).outcome is DeliveryVerdict.DELIVERED
    assert _decide(1, 299).outcome is DeliveryVerdict.DELIVERED
    assert _decide(1, 410).outcome is DeliveryVerdict.GONE
    redirect = _decide(1, 301)
    assert redirect.outcome is DeliveryVerdict.RETRY and "redirects are not followed" in (
        redirect.error or ""
    )


def test_no_response_is_retried_with_the_transport_error() -> None:
    d = decide(attempts_made=1, status=None, error="timeout: x", retry_after=None, now=NOW, rand=lambda: 0.5)
    assert d.outcome is DeliveryVerdict.RETRY and d.error == "timeout: x"


def test_retry_after_seconds_and_http_date_push_the_next_attempt_out() -> None:
    assert _decide(1, 429, "3600").next_attempt_at == NOW + timedelta(hours=1)
    date = format_datetime(NOW + timedelta(hours=2), usegmt=True)
    assert _decide(1, 503, date).next_attempt_at == NOW + timedelta(hours=2)


def test_retry_after_never_shortens_the_schedule_and_is_capped() -> None:
    assert _decide(3, 503, "1").next_attempt_at == NOW + SCHEDULE[2]
    assert parse_retry_after("999999999", NOW) == RETRY_AFTER_CAP
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("", NOW) is None


def test_sustained_failure_disables_only_after_a_day_and_enough_failures() -> None:
    p = DisablePolicy()
    assert not should_disable(50, NOW - timedelta(hours=23), NOW, p)
    assert not should_disable(3, NOW - timedelta(days=3), NOW, p)
    assert should_disable(10, NOW - timedelta(hours=24), NOW, p)
    assert should_disable(p.max_consecutive, NOW, NOW, p)
