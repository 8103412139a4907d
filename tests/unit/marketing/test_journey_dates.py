"""The calendar arithmetic of date triggers: each zone's day, when a day has begun
everywhere, which days a sweep covers."""

from datetime import UTC, date, datetime, timedelta

import pytest

from sealmail.marketing.journey_dates import MAX_CATCH_UP_DAYS, complete, days_to_sweep, local_dates

D = date(2030, 12, 5)


def test_each_zone_has_its_own_date_and_a_name_that_is_no_zone_has_utcs() -> None:
    now = datetime(2030, 12, 4, 10, 30, tzinfo=UTC)
    names = ["Pacific/Kiritimati", "Asia/Tokyo", "UTC", "Pacific/Honolulu", "Etc/GMT+12"]
    bad = ["Mars/Olympus", "", "../../etc/passwd", "A" * 65]
    got = local_dates(names + bad, now)
    # 00:30 on the 5th in Kiritimati (UTC+14), 22:30 on the 3rd at UTC−12 (Etc/GMT+12).
    want = {"Pacific/Kiritimati": 5, "Asia/Tokyo": 4, "UTC": 4, "Pacific/Honolulu": 4, "Etc/GMT+12": 3}
    assert {n: got[n].day for n in names} == want
    assert {got[n] for n in bad} == {now.date()}


@pytest.mark.parametrize(
    ("now", "done"),
    [
        (datetime(2030, 12, 5, 11, 59, 59, tzinfo=UTC), False),  # 23:59:59 on the 4th at UTC−12
        (datetime(2030, 12, 5, 12, 0, tzinfo=UTC), True),
        (datetime(2030, 12, 6, 1, 0, tzinfo=UTC), True),
    ],
)
def test_a_day_is_complete_once_it_has_begun_at_utc_minus_12(now: datetime, done: bool) -> None:
    assert complete(D, now) is done
    assert (local_dates(["Etc/GMT+12"], now)["Etc/GMT+12"] >= D) is done  # the same, by zoneinfo


def test_a_sweep_covers_the_last_day_recorded_through_the_furthest_ahead_zone_at_most_a_month() -> None:
    assert days_to_sweep("2030-12-04", date(2030, 1, 1), D) == [D - timedelta(days=1), D]
    assert days_to_sweep(None, date(2030, 12, 5), D + timedelta(days=1)) == [D, D + timedelta(days=1)]
    long_ago = days_to_sweep("2030-01-01", date(2029, 1, 1), D)
    assert len(long_ago) == MAX_CATCH_UP_DAYS and long_ago[-1] == D
