"""The cron evaluator: 5 fields, L and nL, IANA zones, DST gaps and folds."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

import pytest

from rfq_engine.hedging.cron import CronError, CronSchedule


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def last_fridays(year: int) -> list[date]:
    out = []
    for month in range(1, 13):
        fridays = [week[calendar.FRIDAY] for week in calendar.monthcalendar(year, month)
                   if week[calendar.FRIDAY]]
        out.append(date(year, month, fridays[-1]))
    return out


def firings(schedule: CronSchedule, start: datetime, count: int) -> list[datetime]:
    out = []
    at = start
    for _ in range(count):
        nxt = schedule.next_after(at)
        assert nxt is not None
        out.append(nxt)
        at = nxt
    return out


def test_last_friday_at_14_utc_for_a_year() -> None:
    schedule = CronSchedule.parse("0 14 * * 5L", "UTC")
    got = firings(schedule, utc(2025, 12, 31), 12)
    assert got == [datetime.combine(d, datetime.min.time(), UTC).replace(hour=14) for d in last_fridays(2026)]
    assert got[0] == utc(2026, 1, 30, 14) and got[10] == utc(2026, 11, 27, 14)


def test_last_friday_in_new_york_follows_dst() -> None:
    schedule = CronSchedule.parse("0 14 * * 5L", "America/New_York")
    got = firings(schedule, utc(2026, 1, 1), 12)
    # EST (UTC-5) in Jan, Feb and after 1 Nov; EDT (UTC-4) from 8 March
    hours = [t.hour for t in got]
    assert hours == [19, 19, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19]
    assert [t.date() for t in got] == last_fridays(2026)


def test_last_friday_in_london_around_the_changes() -> None:
    schedule = CronSchedule.parse("0 14 * * 5L", "Europe/London")
    # 2026: BST from 29 March to 25 October
    assert schedule.next_after(utc(2026, 3, 1)) == utc(2026, 3, 27, 14)  # still GMT
    assert schedule.next_after(utc(2026, 3, 28)) == utc(2026, 4, 24, 13)  # BST
    assert schedule.next_after(utc(2026, 10, 1)) == utc(2026, 10, 30, 14)  # GMT again


def test_a_time_skipped_by_spring_forward_fires_once_after_the_gap() -> None:
    schedule = CronSchedule.parse("30 1 * * *", "Europe/London")
    # 29 March 2026: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist
    assert schedule.next_after(utc(2026, 3, 28, 2)) == utc(2026, 3, 29, 1)  # 02:00 BST
    assert schedule.next_after(utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30)  # 01:30 BST


def test_a_repeated_time_fires_once_at_its_first_occurrence() -> None:
    schedule = CronSchedule.parse("30 1 * * *", "Europe/London")
    # 25 October 2026: 01:30 happens at 00:30 UTC (BST) and again at 01:30 UTC (GMT)
    first = schedule.next_after(utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)
    assert schedule.next_after(first) == utc(2026, 10, 26, 1, 30)
    assert schedule.latest_at_or_before(utc(2026, 10, 25, 1, 45)) == first


def test_latest_at_or_before() -> None:
    schedule = CronSchedule.parse("0 14 * * 5L", "UTC")
    slot = utc(2026, 11, 27, 14)
    assert schedule.latest_at_or_before(slot) == slot
    assert schedule.latest_at_or_before(slot - timedelta(microseconds=1)) == utc(2026, 10, 30, 14)
    assert schedule.latest_at_or_before(utc(2026, 12, 24)) == slot


def test_last_day_of_month() -> None:
    schedule = CronSchedule.parse("0 0 L * *")
    got = firings(schedule, utc(2028, 1, 15), 3)
    assert got == [utc(2028, 1, 31), utc(2028, 2, 29), utc(2028, 3, 31)]


def test_lists_ranges_steps_and_names() -> None:
    schedule = CronSchedule.parse("*/20 9-10 * JAN,mar mon-fri")
    got = firings(schedule, utc(2027, 1, 1, 12), 7)  # Fri 1 Jan 2027, after 12:00
    assert got[:6] == [utc(2027, 1, 4, 9, 0), utc(2027, 1, 4, 9, 20), utc(2027, 1, 4, 9, 40),
                       utc(2027, 1, 4, 10, 0), utc(2027, 1, 4, 10, 20), utc(2027, 1, 4, 10, 40)]
    assert got[6] == utc(2027, 1, 5, 9, 0)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    schedule = CronSchedule.parse("0 0 1 * 1")  # the 1st, and every Monday (Vixie cron)
    got = [t.date() for t in firings(schedule, utc(2026, 5, 30), 4)]
    assert got == [date(2026, 6, 1), date(2026, 6, 8), date(2026, 6, 15), date(2026, 6, 22)]
    assert date(2026, 7, 1).weekday() != 0
    assert schedule.matches_day(date(2026, 7, 1))


def test_sunday_is_0_and_7() -> None:
    assert CronSchedule.parse("0 0 * * 0").weekdays == CronSchedule.parse("0 0 * * 7").weekdays == {6}
    assert CronSchedule.parse("0 0 * * 0L").last_weekdays == {6}


@pytest.mark.parametrize(("expression", "message"), [
    ("0 14 * *", "has 4 fields"),
    ("60 14 * * *", "minute: 60 is out of range 0-59"),
    ("0 24 * * *", "hour: 24 is out of range"),
    ("0 0 31 2 *", "never fires"),
    ("0 0 * * 8L", "day-of-week: 8 is out of range"),
    ("0 0 * 13 *", "month: 13 is out of range"),
    ("*/0 * * * *", "minute: step '0'"),
    ("5-1 * * * *", "runs backwards"),
    ("0 0 * * FOO", "day-of-week: 'FOO' is not a number"),
])
def test_invalid_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression)


def test_unknown_zone() -> None:
    with pytest.raises(CronError, match="unknown IANA time zone 'Mars/Olympus'"):
        CronSchedule.parse("0 14 * * 5L", "Mars/Olympus")
