"""A small cron evaluator: the five standard fields, ``L`` and ``nL``, IANA time zones.

    minute  hour  day-of-month  month  day-of-week
    0       14    *             *      5L            # the last Friday of each month, 14:00

Fields accept ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n``, ``a-b/n``,
``a/n``. Months and weekdays also accept names (``JAN``..``DEC``, ``SUN``..``SAT``); weekday
``0`` and ``7`` are both Sunday. Two extensions:

- ``L`` in day-of-month: the last day of the month.
- ``nL`` in day-of-week: the last weekday ``n`` of the month (``5L``: the last Friday).

As in Vixie cron, when both day-of-month and day-of-week are restricted (neither is ``*``)
a day matches if *either* matches.

The expression is read in the schedule's time zone (``zoneinfo``), on local wall time:

- a wall time that a DST change skips (spring forward) fires once, at the first instant
  after the gap (``30 1 * * *`` in Europe/London, on the day the clocks jump from 01:00
  GMT to 02:00 BST, fires at 02:00 BST, i.e. 01:00 UTC);
- a wall time that occurs twice (fall back) fires once, at its first occurrence.

So the map from wall time to instant never goes backwards, and ``next_after`` /
``latest_at_or_before`` return UTC instants in order.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rfq_engine.domain.errors import InputError

__all__ = ["CronError", "CronSchedule", "load_zone"]

_MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_SEARCH_DAYS = 366 * 8 + 2
"""How far a search looks: long enough for any schedule that fires at all (Feb 29 recurs
within 8 years), short enough that a schedule that never fires fails fast."""


class CronError(InputError, ValueError):
    """The expression or the time zone is invalid; the message says which field and why."""


def load_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``UTC``, ``Europe/London``), or a ``CronError``."""
    if not isinstance(name, str) or not name.strip():
        raise CronError("time zone: must be an IANA name like 'UTC' or 'Europe/London'")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"time zone: unknown IANA time zone {name!r} (e.g. 'UTC', 'Europe/London')"
        ) from None


def _number(text: str, lo: int, hi: int, names: dict[str, int], field: str) -> int:
    token = text.strip().upper()
    if token in names:
        return names[token]
    if not token.isdigit():
        raise CronError(f"{field}: {text!r} is not a number in {lo}-{hi}")
    value = int(token)
    if not lo <= value <= hi:
        raise CronError(f"{field}: {value} is out of range {lo}-{hi}")
    return value


def _parse_field(text: str, lo: int, hi: int, field: str,
                 names: dict[str, int] | None = None) -> frozenset[int]:
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{field}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _number(a, lo, hi, names, field), _number(b, lo, hi, names, field)
            if start > end:
                raise CronError(f"{field}: range {base!r} runs backwards")
        else:
            start = _number(base, lo, hi, names, field)
            end = hi if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A parsed expression bound to a time zone. Build it with ``CronSchedule.parse``."""

    expression: str
    zone_name: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday .. 6 = Sunday (``date.weekday()``)
    last_weekdays: frozenset[int]  # the same numbering, for ``nL``
    dom_any: bool
    dow_any: bool

    @classmethod
    def parse(cls, expression: str, zone: str = "UTC") -> CronSchedule:
        """Validate ``expression`` and ``zone``; a ``CronError`` names the field at fault."""
        if not isinstance(expression, str):
            raise CronError("schedule: must be a cron string like '0 14 * * 5L'")
        fields = expression.split()
        if len(fields) != 5:
            raise CronError(
                f"schedule: {expression!r} has {len(fields)} fields; cron needs 5 "
                "(minute hour day-of-month month day-of-week), e.g. '0 14 * * 5L'"
            )
        minute, hour, dom, month, dow = fields
        load_zone(zone)
        days: set[int] = set()
        last_day = False
        if dom != "*":
            rest = []
            for part in dom.split(","):
                if part.upper() == "L":
                    last_day = True
                else:
                    rest.append(part)
            if rest:
                days = set(_parse_field(",".join(rest), 1, 31, "day-of-month"))
        weekdays: set[int] = set()
        last_weekdays: set[int] = set()
        if dow != "*":
            rest = []
            for part in dow.split(","):
                upper = part.upper()
                if upper.endswith("L") and len(upper) > 1:
                    cron_day = _number(upper[:-1], 0, 7, _DAYS, "day-of-week")
                    last_weekdays.add((cron_day - 1) % 7)
                else:
                    rest.append(part)
            if rest:
                # cron: 0 and 7 are Sunday, 1 Monday; Python: 0 Monday .. 6 Sunday
                weekdays = {(d - 1) % 7 for d in _parse_field(",".join(rest), 0, 7, "day-of-week",
                                                              _DAYS)}
        schedule = cls(
            expression=" ".join(fields),
            zone_name=zone.strip(),
            minutes=_parse_field(minute, 0, 59, "minute"),
            hours=_parse_field(hour, 0, 23, "hour"),
            days=frozenset(days),
            last_day=last_day,
            months=_parse_field(month, 1, 12, "month", _MONTHS),
            weekdays=frozenset(weekdays),
            last_weekdays=frozenset(last_weekdays),
            dom_any=dom == "*",
            dow_any=dow == "*",
        )
        if schedule.next_after(datetime(2000, 1, 1, tzinfo=UTC)) is None:
            raise CronError(f"schedule: {expression!r} never fires (no such day in any month)")
        return schedule

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.zone_name)

    # ------------------------------------------------------------------ matching

    def matches_day(self, day: date) -> bool:
        """Whether the local calendar ``day`` is a day this schedule fires on."""
        if day.month not in self.months:
            return False
        month_end = calendar.monthrange(day.year, day.month)[1]
        dom = day.day in self.days or (self.last_day and day.day == month_end)
        weekday = day.weekday()
        dow = weekday in self.weekdays or (weekday in self.last_weekdays and day.day + 7 > month_end)
        if self.dom_any and self.dow_any:
            return True
        if self.dom_any:
            return dow
        if self.dow_any:
            return dom
        return dom or dow

    def _times(self) -> list[time]:
        return [time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]

    def _instant(self, day: date, at: time) -> datetime:
        """The UTC instant of local wall time ``day at`` (gap: first instant after; fold: first)."""
        zone = self.zone
        wall = datetime.combine(day, at)
        local = wall.replace(tzinfo=zone, fold=0)
        utc = local.astimezone(UTC)
        if utc.astimezone(zone).replace(tzinfo=None) == wall:
            return utc  # exists (the first occurrence if it is ambiguous)
        # Skipped by a DST change: find the transition, the first instant whose wall time is
        # past ``wall``. It lies between the two readings of ``wall`` (after and before).
        lo = int(wall.replace(tzinfo=zone, fold=1).astimezone(UTC).timestamp())
        hi = int(utc.timestamp())
        lo, hi = min(lo, hi), max(lo, hi)
        while lo < hi:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= wall:
                hi = mid
            else:
                lo = mid + 1
        return datetime.fromtimestamp(lo, UTC)

    # ------------------------------------------------------------------ search

    def next_after(self, after: datetime) -> datetime | None:
        """The first firing instant strictly after ``after`` (UTC), or None within 8 years."""
        _aware(after)
        start = after.astimezone(self.zone).date() - timedelta(days=1)
        times = self._times()
        for offset in range(_SEARCH_DAYS):
            day = start + timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for at in times:
                instant = self._instant(day, at)
                if instant > after:
                    return instant
        return None

    def latest_at_or_before(self, at: datetime) -> datetime | None:
        """The last firing instant at or before ``at`` (UTC), or None within 8 years."""
        _aware(at)
        start = at.astimezone(self.zone).date() + timedelta(days=1)
        times = list(reversed(self._times()))
        for offset in range(_SEARCH_DAYS):
            day = start - timedelta(days=offset)
            if not self.matches_day(day):
                continue
            for wall in times:
                instant = self._instant(day, wall)
                if instant <= at:
                    return instant
        return None

    def local(self, instant: datetime) -> datetime:
        """``instant`` as wall time in the schedule's zone."""
        return _aware(instant).astimezone(self.zone)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware UTC datetime")
    return value
