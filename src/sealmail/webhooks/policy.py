"""Pure decisions about one delivery attempt: retry when, give up, disable the endpoint.

The schedule is the Standard Webhooks example ("Retry schedule" in the spec: attempts
spread over about three days with exponential backoff), with jitter so that an endpoint
coming back from an outage is not hit by every delivery in the same second.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from sealmail.domain.numerals import saturating

# Delays before retry 1..9; the first attempt is immediate.  ≈ 75.6 h in all.
SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1  # ± 10 % of the delay
# A receiver may ask us to wait (Retry-After), but not for longer than our own
# longest step: the three-day budget is what the tenant was promised.
RETRY_AFTER_CAP = timedelta(hours=24)
RETRY_AFTER_CAP_SECONDS = int(RETRY_AFTER_CAP.total_seconds())


class DeliveryVerdict(enum.StrEnum):
    DELIVERED = "delivered"  # 2xx
    RETRY = "retry"  # anything else while attempts remain
    FAILED = "failed"  # schedule exhausted
    GONE = "gone"  # 410: the receiver says the endpoint no longer exists


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: DeliveryVerdict
    next_attempt_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DisablePolicy:
    """When sustained failure disables an endpoint (either condition suffices)."""

    failing_for: timedelta = timedelta(hours=24)  # no success for this long ...
    min_failures: int = 10  # ... and at least this many failures in a row
    max_consecutive: int = 1000  # or this many failures in a row, however fast


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; ``None`` when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    # The receiver is outside our control: a long run of digits would overflow ``timedelta``
    # (or ``int``'s 4300-digit guard), so anything past the cap is the cap; "²" is no number.
    seconds = saturating(value, RETRY_AFTER_CAP_SECONDS)
    if seconds is not None:
        delay = timedelta(seconds=seconds)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - now
    if delay <= timedelta(0):
        return None
    return min(delay, RETRY_AFTER_CAP)


def describe_status(status: int) -> str | None:
    """Why a status is a failure (``None`` for 2xx)."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        # Redirects are never followed (an SSRF vector: a public URL could bounce us
        # to an internal one), so a 3xx is the receiver's misconfiguration.
        return f"HTTP {status}: redirects are not followed"
    return f"HTTP {status}"


def decide(
    *,
    attempts_made: int,
    status: int | None,
    error: str | None,
    retry_after: str | None,
    now: datetime,
    rand: Callable[[], float],
) -> Decision:
    """What follows attempt number ``attempts_made`` (1-based) given its result.

    ``status`` is ``None`` when no response arrived (``error`` says why); ``rand``
    returns a float in [0, 1) for the jitter.
    """
    if status is not None:
        error = describe_status(status)
        if error is None:
            return Decision(DeliveryVerdict.DELIVERED)
        if status == 410:
            return Decision(DeliveryVerdict.GONE, error=f"{error}: endpoint gone, disabled")
    error = error or "unknown failure"
    if attempts_made >= MAX_ATTEMPTS:
        return Decision(DeliveryVerdict.FAILED, error=error)
    step = SCHEDULE[max(attempts_made, 1) - 1]
    delay = step * (1 - JITTER + 2 * JITTER * rand())
    asked = parse_retry_after(retry_after, now)
    if asked is not None and asked > delay:
        delay = asked
    return Decision(DeliveryVerdict.RETRY, next_attempt_at=now + delay, error=error)


def should_disable(
    consecutive_failures: int, failing_since: datetime | None, now: datetime, policy: DisablePolicy
) -> bool:
    if consecutive_failures >= policy.max_consecutive:
        return True
    return (
        failing_since is not None
        and consecutive_failures >= policy.min_failures
        and now - failing_since >= policy.failing_for
    )
