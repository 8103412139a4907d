"""``decide_send``: the pure rule every claimed marketing recipient passes (issue 16)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from sealmail.domain.marketing import (
    Authorization,
    ConsentState,
    Defer,
    Purpose,
    Send,
    SendFacts,
    Skip,
    decide_send,
    quiet_until,
)

NOON = datetime(2026, 6, 10, 17, 0, tzinfo=UTC)  # 12:00 in Chicago (CDT)
VALID = Authorization(expires_at=NOON + timedelta(days=30), revoked=False, remuneration=False)
BASE = SendFacts(
    purpose=Purpose.MARKETING,
    remunerated=False,
    contact_status="active",
    consent=ConsentState.AUTHORIZED,
    authorization=VALID,
    suppressed=False,
    sent_in_window=(),
    cap=None,
    cap_window=timedelta(0),
    tz="America/Chicago",
    quiet_start=21,
    quiet_end=8,
    now=NOON,
)


def test_an_authorized_contact_at_noon_is_sent() -> None:
    assert decide_send(BASE) == Send()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"authorization": None, "consent": None}, "no_authorization"),
        ({"consent": ConsentState.GRANTED}, "no_authorization"),  # consent is not an authorization
        ({"consent": ConsentState.REVOKED}, "authorization_revoked"),
        ({"authorization": replace(VALID, revoked=True)}, "authorization_revoked"),
        ({"authorization": replace(VALID, expires_at=NOON)}, "authorization_expired"),
        ({"consent": ConsentState.EXPIRED}, "authorization_expired"),
        ({"remunerated": True}, "remuneration_not_disclosed"),
        ({"suppressed": True}, "suppressed"),
        ({"contact_status": "unsubscribed"}, "contact_unsubscribed"),
        ({"purpose": Purpose.FUNDRAISING, "consent": ConsentState.REVOKED}, "fundraising_opt_out"),
        ({"purpose": Purpose.TREATMENT, "consent": ConsentState.REVOKED}, "opted_out"),
        (
            {"purpose": Purpose.TREATMENT, "remunerated": True, "consent": None, "authorization": None},
            "no_authorization",
        ),
    ],
)
def test_each_missing_permission_skips_with_its_reason(change: dict[str, object], reason: str) -> None:
    assert decide_send(replace(BASE, **change)) == Skip(reason)  # type: ignore[arg-type]


def test_treatment_and_fundraising_need_no_authorization_until_an_opt_out() -> None:
    for purpose in (Purpose.TREATMENT, Purpose.OPERATIONS, Purpose.FUNDRAISING):
        assert decide_send(replace(BASE, purpose=purpose, consent=None, authorization=None)) == Send()


def test_a_paid_mailing_with_a_disclosed_remuneration_is_sent() -> None:
    paid = replace(BASE, remunerated=True, authorization=replace(VALID, remuneration=True))
    assert decide_send(paid) == Send()


def test_a_skip_wins_over_quiet_hours() -> None:
    night = NOON + timedelta(hours=10)  # 22:00 in Chicago
    revoked = replace(BASE, now=night, consent=ConsentState.REVOKED)
    assert decide_send(revoked) == Skip("authorization_revoked")


def test_quiet_hours_defer_to_their_end_in_the_contacts_zone() -> None:
    night = NOON + timedelta(hours=10)  # 22:00 in Chicago: quiet until 08:00 there, 13:00 UTC
    wake = datetime(2026, 6, 11, 13, 0, tzinfo=UTC)
    assert decide_send(replace(BASE, now=night)) == Defer(wake, "quiet_hours")
    early = datetime(2026, 6, 11, 9, 30, tzinfo=UTC)  # 04:30 in Chicago, same morning
    assert quiet_until(early, "America/Chicago", 21, 8) == datetime(2026, 6, 11, 13, 0, tzinfo=UTC)
    # 02:00 on the 11th in Tokyo: quiet until 08:00 there, 23:00 UTC on the 10th.
    assert quiet_until(NOON, "Asia/Tokyo", 21, 8) == datetime(2026, 6, 10, 23, 0, tzinfo=UTC)
    assert quiet_until(NOON, "America/Chicago", 9, 9) is None  # equal hours: no quiet window


def test_a_window_that_does_not_wrap_midnight() -> None:
    assert quiet_until(NOON, "UTC", 17, 19) == datetime(2026, 6, 10, 19, 0, tzinfo=UTC)
    assert quiet_until(NOON, "UTC", 18, 19) is None
    assert quiet_until(NOON, "UTC", 12, 17) is None  # the end hour is outside


def test_a_full_cap_defers_until_the_oldest_send_leaves_the_window() -> None:
    sent = (NOON - timedelta(hours=20), NOON - timedelta(hours=2))
    capped = replace(BASE, cap=2, cap_window=timedelta(hours=24), sent_in_window=sent)
    assert decide_send(capped) == Defer(NOON + timedelta(hours=4), "frequency_cap")
    assert decide_send(replace(capped, cap=3)) == Send()


@pytest.mark.parametrize("bad", ["Mars/Olympus", "", "../../etc/passwd", "x" * 300])
def test_a_stored_zone_naming_no_zone_keeps_utc_quiet_hours_instead_of_failing_the_claim(bad: str) -> None:
    late = datetime(2026, 6, 10, 22, 30, tzinfo=UTC)  # 22:30 UTC: inside 21 → 8 in UTC
    assert quiet_until(late, bad, 21, 8) == datetime(2026, 6, 11, 8, 0, tzinfo=UTC)
    assert quiet_until(NOON, bad, 21, 8) is None
