"""Date-attribute triggers on SQLite and PostgreSQL: birthdays come round every year
(``mode: anniversary``, a 29 February birthday on 28 February in other years), a sweep
catches up the days a stopped worker missed, and no contact is enrolled twice for one
occurrence however many sweeps run."""

from datetime import UTC, date, datetime, time

import sqlalchemy as sa
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import NO_QUIET, Shop, shop
from tests.integration.marketing.test_marketing_journeys import FROM, journey

from sealmail.marketing.tables import mkt_contacts, mkt_enrollments

__all__ = ["pipeline", "shop"]

SEND = {"send": {"template": "promo", "purpose": "treatment", "from": FROM, **NO_QUIET}}
BIRTHDAY = {"type": "date_attribute", "attr": "birth_date", "mode": "anniversary"}


def at(day: date) -> datetime:
    return datetime.combine(day, time(9), tzinfo=UTC)


def declare(shop: Shop, name: str) -> None:
    body = {"name": name, "type": "date", "phi_class": "demographic"}
    assert shop.client.post("/v1/marketing/attributes", json=body, headers=shop.h).status_code == 201


def enrolled(shop: Shop) -> list[tuple[str, str]]:
    """(email, trigger key) of every enrollment."""
    with shop.p.services.engine.connect() as conn:
        rows = conn.execute(
            sa.select(mkt_contacts.c.email, mkt_enrollments.c.trigger_key).join(
                mkt_contacts, mkt_contacts.c.id == mkt_enrollments.c.contact_id
            )
        ).all()
    return sorted((e, k) for e, k in rows)


# Sweeps run at days after the journey was saved (a sweep never goes back before that day,
# nor more than MAX_CATCH_UP_DAYS), so fixed days in the future make the calendar explicit.
BASE = date(2030, 6, 10)


def test_birthdays_come_round_each_year_and_a_missed_day_is_caught_up(shop: Shop) -> None:
    declare(shop, "birth_date")
    shop.contact("amy@example.net", birth_date="1980-06-11")
    shop.contact("ben@example.net", birth_date="1975-06-12")
    shop.contact("kid@example.net", birth_date="2090-06-11")  # not born yet: no anniversary
    shop.contact("leap@example.net", birth_date="2000-02-29")
    shop.contact("none@example.net")
    saved = journey(shop, "birthday", BIRTHDAY, [SEND])
    assert saved.status_code == 201, saved.text
    journeys = shop.p.services.marketing.journeys
    t = shop.p.tenant.id
    assert journeys.enroll_dates(t, at(BASE)) == 0
    # No sweep on the 11th (the worker was down): the one on the 12th enrols both birthdays.
    assert journeys.enroll_dates(t, at(date(2030, 6, 12))) == 2
    assert journeys.enroll_dates(t, at(date(2030, 6, 12))) == 0  # swept again: nobody twice
    assert enrolled(shop) == [
        ("amy@example.net", "date:birth_date:2030-06-11"),
        ("ben@example.net", "date:birth_date:2030-06-12"),
    ]
    # A date stored after today's first sweep still triggers today (today is swept every tick).
    shop.contact("late@example.net", birth_date="1990-06-12")
    assert journeys.enroll_dates(t, at(date(2030, 6, 12))) == 1
    # 29 February 2000 comes round on 28 February 2031 (there is no 29th), once.
    assert journeys.enroll_dates(t, at(date(2031, 2, 28))) == 1
    assert journeys.enroll_dates(t, at(date(2031, 3, 1))) == 0
    # A year on, amy's birthday enrols her again: once per journey, contact and year.
    assert journeys.enroll_dates(t, at(date(2031, 6, 11))) == 1
    # A leap year has its own 29 February: not fired on the 28th as well.
    assert journeys.enroll_dates(t, at(date(2032, 2, 28))) == 0
    assert journeys.enroll_dates(t, at(date(2032, 2, 29))) == 1
    keys = enrolled(shop)
    assert [k for e, k in keys if e == "amy@example.net"] == [
        "date:birth_date:2030-06-11",
        "date:birth_date:2031-06-11",
    ]
    assert [k for e, k in keys if e == "leap@example.net"] == [
        "date:birth_date:2031-02-28",
        "date:birth_date:2032-02-29",
    ]
    assert {e for e, _ in keys} == {f"{n}@example.net" for n in ("amy", "ben", "late", "leap")}
    journeys.run_due("j1")
    shop.p.run_worker()
    shop.p.sink.wait_for(len(keys))
    assert sorted(set(shop.received())) == sorted({e for e, _ in keys})


def test_an_exact_date_trigger_catches_up_missed_days_once(shop: Shop) -> None:
    declare(shop, "recall_due")
    shop.contact("a@example.net", recall_due="2030-06-18")
    shop.contact("b@example.net", recall_due="2030-06-19")
    shop.contact("c@example.net", recall_due="2001-06-18")  # another year: exact dates only
    trigger = {"type": "date_attribute", "attr": "recall_due", "days_before": 7}
    assert journey(shop, "recall", trigger, [SEND]).status_code == 201
    journeys = shop.p.services.marketing.journeys
    t = shop.p.tenant.id
    assert journeys.enroll_dates(t, at(BASE)) == 0
    assert journeys.enroll_dates(t, at(date(2030, 6, 12))) == 2  # the 11th and the 12th
    assert journeys.enroll_dates(t, at(date(2030, 6, 12))) == 0
    assert [e for e, _ in enrolled(shop)] == ["a@example.net", "b@example.net"]


def test_a_date_trigger_mode_is_checked(shop: Shop) -> None:
    declare(shop, "birth_date")
    for mode in ("yearly", ["anniversary"], 1, None):
        r = journey(shop, "bad", {**BIRTHDAY, "mode": mode}, [SEND])
        assert r.status_code == 422, (mode, r.text)
        assert r.json()["errors"][0]["field"] in ("trigger.mode", "definition")
