"""What one delivery attempt makes of its recipient: new status, event, next try, extras."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sealmail.domain.outcomes import Attempt, AttemptStatus
from sealmail.domain.retry import Bounce, Expire, Retry, RetrySchedule
from sealmail.domain.statuses import RecipientStatus
from sealmail.store.events import EventType

Verdict = tuple[RecipientStatus, EventType, datetime | None, dict[str, Any] | None]


def verdict(
    schedule: RetrySchedule,
    on_tls_unavailable: str,
    attempt: Attempt,
    attempt_number: int,
    created_at: datetime,
    finished: datetime,
    expires_at: datetime | None,
) -> Verdict:
    """The recipient's new status, its event, the next attempt's time and the event's extras.

    ``on_tls_unavailable`` is the worker's setting: ``fail`` bounces a recipient whose
    required TLS could not be had, ``defer`` retries it on the schedule.
    """
    if attempt.status is AttemptStatus.DELIVERED:
        return RecipientStatus.DELIVERED, EventType.DELIVERED, None, None
    if attempt.reason == "tls_required" and on_tls_unavailable == "fail":
        bounce = {"bounce": {"type": "hard", "classification": "tls_required"}}
        return RecipientStatus.BOUNCED, EventType.BOUNCED, None, bounce
    decision = schedule.decide(attempt, attempt_number, created_at, finished, expires_at)
    if isinstance(decision, Retry):
        extra = {"classification": str(decision.bounce_class)}
        return RecipientStatus.DEFERRED, EventType.DEFERRED, decision.at, extra
    if isinstance(decision, Bounce):
        bounce = {"bounce": {"type": "hard", "classification": str(decision.bounce_class)}}
        return RecipientStatus.BOUNCED, EventType.BOUNCED, None, bounce
    assert isinstance(decision, Expire)
    bounce = {"bounce": {"type": "soft_exhausted", "classification": str(decision.last_class)}}
    return RecipientStatus.EXPIRED, EventType.EXPIRED, None, bounce
