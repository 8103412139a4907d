"""Date-attribute triggers on SQLite and PostgreSQL: birthdays come round every year
(``mode: anniversary``, a 29 February birthday on 28 February in other years), a sweep
catches up the days a stopped worker missed, and no contact is enrolled twice for one
occurrence however many sweeps run.  Days are the contact's own: a Honolulu birthday is
not enrolled until the day has begun in Honolulu, and a day is recorded swept only once it
has begun everywhere (12:00 UTC)."""

import sqlite3
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from tests.integration.delivery.test_worker import pipeline
from tests.integration.marketing.test_marketing_campaigns import NO_QUIET, Shop, shop
from tests.integration.marketing.test_marketing_journeys import FROM, journey

from sealmail.evidence.tables import scheduled_runs
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


# -- the contact's own day -------------------------------------------------------------------
D = date(2030, 12, 5)


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def contact_in(shop: Shop, address: str, tz: str, **attributes: str) -> str:
    body = {"email": address, "tz": tz, "attributes": attributes}
    r = shop.client.post("/v1/marketing/contacts", json=body, headers=shop.h)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def recorded(shop: Shop) -> set[date]:
    """The days recorded as swept (for every journey of the test)."""
    with shop.p.services.engine.connect() as conn:
        periods = conn.execute(
            sa.select(scheduled_runs.c.period).where(scheduled_runs.c.job.like("jdates:%"))
        ).scalars()
        return {date.fromisoformat(p) for p in periods}


def test_a_birthday_is_enrolled_once_it_has_begun_in_the_contacts_zone(shop: Shop) -> None:
    declare(shop, "birth_date")
    contact_in(shop, "hono@example.net", "Pacific/Honolulu", birth_date="1980-12-05")  # UTC−10
    contact_in(shop, "tokyo@example.net", "Asia/Tokyo", birth_date="1985-12-05")  # UTC+9
    contact_in(shop, "kiri@example.net", "Pacific/Kiritimati", birth_date="1990-12-05")  # UTC+14
    assert journey(shop, "birthday", BIRTHDAY, [SEND]).status_code == 201
    journeys = shop.p.services.marketing.journeys
    t = shop.p.tenant.id
    # 10:30 UTC the day before: the 5th has begun in Kiritimati only (00:30 there).
    assert journeys.enroll_dates(t, utc(D - timedelta(days=1), 10, 30)) == 1
    assert [e for e, _ in enrolled(shop)] == ["kiri@example.net"]
    assert journeys.enroll_dates(t, utc(D - timedelta(days=1), 14, 59)) == 0  # 23:59 in Tokyo
    # 00:30 UTC on the 5th: 09:30 in Tokyo, still 14:30 on the 4th in Honolulu.
    assert journeys.enroll_dates(t, utc(D, 0, 30)) == 1
    assert [e for e, _ in enrolled(shop)] == ["kiri@example.net", "tokyo@example.net"]
    assert journeys.enroll_dates(t, utc(D, 9, 59)) == 0  # 23:59 on the 4th in Honolulu
    # 10:30 UTC: 00:30 on the 5th in Honolulu.
    assert journeys.enroll_dates(t, utc(D, 10, 30)) == 1
    assert D not in recorded(shop)  # still the 4th in UTC−12 (Baker Island) until 12:00 UTC
    assert journeys.enroll_dates(t, utc(D, 11, 59)) == 0
    assert D not in recorded(shop)
    assert D - timedelta(days=1) in recorded(shop)
    assert journeys.enroll_dates(t, utc(D, 12, 0)) == 0
    assert D in recorded(shop)
    # Recorded, but still the 5th in Honolulu (03:00): a birthday stored now still triggers.
    contact_in(shop, "late@example.net", "Pacific/Honolulu", birth_date="1999-12-05")
    assert journeys.enroll_dates(t, utc(D, 13, 0)) == 1
    # Swept again (the 5th is still current west of UTC+12; later days): nobody twice.
    assert journeys.enroll_dates(t, utc(D, 23, 0)) == 0
    assert journeys.enroll_dates(t, utc(D + timedelta(days=1), 13, 0)) == 0
    assert enrolled(shop) == [
        (f"{n}@example.net", "date:birth_date:2030-12-05") for n in ("hono", "kiri", "late", "tokyo")
    ]


def test_an_exact_date_is_enrolled_by_the_contacts_day(shop: Shop) -> None:
    declare(shop, "recall_due")
    contact_in(shop, "hono@example.net", "Pacific/Honolulu", recall_due="2030-12-12")
    contact_in(shop, "tokyo@example.net", "Asia/Tokyo", recall_due="2030-12-12")
    contact_in(shop, "later@example.net", "Asia/Tokyo", recall_due="2030-12-13")
    trigger = {"type": "date_attribute", "attr": "recall_due", "days_before": 7}
    assert journey(shop, "recall", trigger, [SEND]).status_code == 201
    journeys = shop.p.services.marketing.journeys
    t = shop.p.tenant.id
    # A week before the 12th is the 5th: begun in Tokyo at 15:00 UTC on the 4th.
    assert journeys.enroll_dates(t, utc(D - timedelta(days=1), 14, 30)) == 0
    assert journeys.enroll_dates(t, utc(D, 0, 30)) == 1
    assert enrolled(shop) == [("tokyo@example.net", "date:recall_due:2030-12-12")]
    assert journeys.enroll_dates(t, utc(D, 10, 30)) == 1
    assert journeys.enroll_dates(t, utc(D, 10, 30)) == 0
    assert D not in recorded(shop)
    assert journeys.enroll_dates(t, utc(D, 12, 30)) == 0
    assert D in recorded(shop)
    assert enrolled(shop) == [
        ("hono@example.net", "date:recall_due:2030-12-12"),
        ("tokyo@example.net", "date:recall_due:2030-12-12"),
    ]
    # The 6th has begun in Tokyo: the 13th's recall, and nobody else again.
    assert journeys.enroll_dates(t, utc(D, 15, 30)) == 1
    assert [k for e, k in enrolled(shop) if e == "later@example.net"] == ["date:recall_due:2030-12-13"]


def test_a_stored_zone_that_is_no_zone_counts_as_utc(shop: Shop) -> None:
    declare(shop, "birth_date")
    contact_in(shop, "tokyo@example.net", "Asia/Tokyo", birth_date="1985-12-05")
    mars = contact_in(shop, "mars@example.net", "UTC", birth_date="1980-12-05")
    blank = contact_in(shop, "blank@example.net", "UTC", birth_date="1981-12-05")
    # Intake refuses these names; a row written some other way may still hold one.
    with shop.p.services.engine.begin() as conn:
        for cid, tz in ((mars, "Mars/Olympus"), (blank, "")):
            conn.execute(sa.update(mkt_contacts).where(mkt_contacts.c.id == cid).values(tz=tz))
    assert journey(shop, "birthday", BIRTHDAY, [SEND]).status_code == 201
    journeys = shop.p.services.marketing.journeys
    t = shop.p.tenant.id
    assert journeys.enroll_dates(t, utc(D - timedelta(days=1), 23, 30)) == 1
    assert [e for e, _ in enrolled(shop)] == ["tokyo@example.net"]
    assert journeys.enroll_dates(t, utc(D, 0, 0)) == 2  # the 5th has begun in UTC
    assert [e for e, _ in enrolled(shop)] == ["blank@example.net", "mars@example.net", "tokyo@example.net"]


def test_the_sweep_scans_contacts_without_holding_the_write_lock(shop: Shop) -> None:
    """The scan reads every contact's date attribute (~0.4 s at a million): on SQLite, inside
    the write transaction it held intake's write lock for all of it.  While the contacts are
    scanned, another connection can start writing at once; the enrollment still commits.
    (On PostgreSQL, where readers never block writers, the scan and the enrollment are checked.)"""
    engine = shop.p.services.engine
    declare(shop, "birth_date")
    shop.contact("amy@example.net", birth_date="1980-06-11")
    assert journey(shop, "birthday", BIRTHDAY, [SEND]).status_code == 201
    probes: list[bool] = []

    def probe(conn: sa.Connection, cursor: object, statement: str, *args: object) -> None:
        if not statement.startswith("SELECT mkt_contacts.id \nFROM mkt_contacts"):
            return  # not the scan
        if engine.dialect.name != "sqlite":
            probes.append(True)  # PostgreSQL's writers do not wait on a reading transaction
            return
        other = engine.raw_connection()
        try:
            other.execute("PRAGMA busy_timeout = 0")
            other.execute("BEGIN IMMEDIATE")  # fails while the lock is held
            probes.append(True)
        except sqlite3.OperationalError:
            probes.append(False)
        finally:
            other.rollback()
            other.close()

    sa.event.listen(engine, "before_cursor_execute", probe)
    try:
        assert shop.p.services.marketing.journeys.enroll_dates(shop.p.tenant.id, at(date(2030, 6, 12))) == 1
    finally:
        sa.event.remove(engine, "before_cursor_execute", probe)
    assert probes and all(probes), probes
    assert enrolled(shop) == [("amy@example.net", "date:birth_date:2030-06-11")]
