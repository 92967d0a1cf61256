"""Production forecast and hashprice (DOMAIN.md, "Hashprice and the production forecast").

    BTC/day  = H * 86400 * (block_subsidy + avg_fees_per_block) / (difficulty * 2^32) * uptime
    hashprice (BTC per PH/s per day) = the same with H = 10^15 and no uptime
    hashprice (USD per PH/s per day) = hashprice (BTC) * BTC price

``H`` is in hashes per second (``parse_hashrate`` turns ``"50 PH/s"`` into ``5E16``).
Difficulty may change at each adjustment (every 2,016 blocks, 14 days at the 10-minute
target): with ``difficulty_change = g`` per adjustment, the difficulty on a day after ``k``
adjustments is ``D * (1 + g)^k``, and a period's production is the sum of its days.

Everything is ``Decimal``, computed at 50 digits and returned at 28 (``2^32`` is exact).
Every input is validated; a ``ValidationError`` names the field and its unit.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import ENTRY_BOUNDS, decimal_str, parse_decimal

__all__ = [
    "BLOCK_SUBSIDY",
    "HASHRATE_UNITS",
    "SECONDS_PER_DAY",
    "TWO_32",
    "ForecastInputs",
    "Period",
    "PeriodForecast",
    "btc_per_day",
    "difficulty_on",
    "forecast_period",
    "format_hashrate",
    "hashprice_btc",
    "hashprice_usd",
    "parse_hashrate",
]

TWO_32 = Decimal(2**32)
SECONDS_PER_DAY = Decimal(86400)
BLOCK_SUBSIDY = Decimal("3.125")
"""BTC per block since the April 2024 halving."""
PH = Decimal(10) ** 15
HASHRATE_UNITS: Mapping[str, Decimal] = {
    "TH/s": Decimal(10) ** 12,
    "PH/s": PH,
    "EH/s": Decimal(10) ** 18,
}
ADJUSTMENT_DAYS = 14
"""2,016 blocks at the 10-minute target."""

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)


def parse_hashrate(value: object, field: str = "hashrate") -> Decimal:
    """``"50 PH/s"`` (also ``"50PH/s"``, ``"1.2 EH/s"``, ``"800 TH/s"``) in hashes per second."""
    units = ", ".join(HASHRATE_UNITS)
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string with a unit ({units}), like '50 PH/s'")
    text = value.strip()
    for unit, scale in HASHRATE_UNITS.items():
        if text.upper().endswith(unit.upper()):
            number_text = text[: -len(unit)].strip()
            if not number_text:
                break
            try:
                number = parse_decimal(number_text, field, ENTRY_BOUNDS)
            except ValidationError:
                break
            if number <= 0:
                raise ValidationError(field, f"must be a positive hashrate in {unit}, got {value!r}")
            return number * scale
    raise ValidationError(field, f"must be a number with a unit ({units}), like '50 PH/s'; got {value!r}")


def format_hashrate(hashes_per_second: Decimal) -> str:
    """The largest unit that keeps the number at least 1: ``5E16`` -> ``'50 PH/s'``."""
    for unit in ("EH/s", "PH/s", "TH/s"):
        scale = HASHRATE_UNITS[unit]
        if hashes_per_second >= scale or unit == "TH/s":
            with localcontext(_OUT):
                return f"{decimal_str(hashes_per_second / scale)} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


def _positive(value: Decimal, field: str, unit: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValidationError(field, f"must be a positive number of {unit}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class ForecastInputs:
    """What production depends on. Validated on construction; every message carries the unit."""

    hashrate: Decimal
    """Hashes per second (``parse_hashrate("50 PH/s")``)."""
    difficulty: Decimal
    """Network difficulty (dimensionless), e.g. ``110000000000000``."""
    block_subsidy: Decimal = BLOCK_SUBSIDY
    """BTC per block."""
    fees_per_block: Decimal = Decimal(0)
    """Average transaction fees, BTC per block."""
    uptime: Decimal = Decimal(1)
    """Fraction of the time the machines hash, in (0, 1]."""
    difficulty_change: Decimal = Decimal(0)
    """Expected relative change per adjustment (``0.02`` = +2%), greater than -1."""
    next_adjustment: date | None = None
    """The date of the next adjustment; None: 14 days after the forecast's ``as_of``."""
    adjustment_days: int = ADJUSTMENT_DAYS
    hashrate_changes: tuple[tuple[date, Decimal], ...] = ()
    """(day, change in H/s) from that day on: deployments (+) and retirements (-)."""
    curtailments: tuple[tuple[date, date, Decimal], ...] = ()
    """(first day off, first day back, H/s off): machines curtailed for those days."""

    def installed_on(self, day: date) -> Decimal:
        """The hashrate installed on ``day`` (H/s): today's plus the changes dated up to it."""
        return self.hashrate + sum((delta for d, delta in self.hashrate_changes if d <= day), Decimal(0))

    def hashrate_on(self, day: date) -> Decimal:
        """The hashrate hashing on ``day`` (H/s), before uptime: installed minus curtailed."""
        off = sum((h for first, back, h in self.curtailments if first <= day < back), Decimal(0))
        return max(self.installed_on(day) - off, Decimal(0))

    def __post_init__(self) -> None:
        _positive(self.hashrate, "hashrate", "hashes per second (H/s)")
        _positive(self.difficulty, "difficulty", "difficulty units (dimensionless)")
        if not isinstance(self.block_subsidy, Decimal) or not self.block_subsidy.is_finite() \
                or self.block_subsidy < 0:
            raise ValidationError("block_subsidy", f"must be a non-negative number of BTC per block, "
                                  f"got {self.block_subsidy!r}")
        if not isinstance(self.fees_per_block, Decimal) or not self.fees_per_block.is_finite() \
                or self.fees_per_block < 0:
            raise ValidationError("fees_per_block", f"must be a non-negative number of BTC per "
                                  f"block, got {self.fees_per_block!r}")
        if self.block_subsidy + self.fees_per_block <= 0:
            raise ValidationError("block_subsidy", "block subsidy plus fees must be positive (BTC per "
                                  "block)")
        if not isinstance(self.uptime, Decimal) or not self.uptime.is_finite() \
                or not 0 < self.uptime <= 1:
            raise ValidationError("uptime", f"must be a fraction of time in (0, 1] (0.95 = 95%), got "
                                  f"{self.uptime!r}")
        if not isinstance(self.difficulty_change, Decimal) or not self.difficulty_change.is_finite() \
                or self.difficulty_change <= -1:
            raise ValidationError("difficulty_change", "must be a relative change per adjustment "
                                  f"greater than -1 (0.02 = +2%), got {self.difficulty_change!r}")
        if isinstance(self.adjustment_days, bool) or not isinstance(self.adjustment_days, int) \
                or not 1 <= self.adjustment_days <= 366:
            raise ValidationError("adjustment_days", "must be a whole number of days 1..366, got "
                                  f"{self.adjustment_days!r}")

        for day, _ in self.hashrate_changes:
            if self.installed_on(day) < 0:
                raise ValidationError("fleet.changes", f"the retirements dated up to {day.isoformat()} "
                                      "exceed the hashrate installed (H/s)")

    @property
    def reward_per_block(self) -> Decimal:
        """BTC per block: subsidy plus average fees."""
        return self.block_subsidy + self.fees_per_block

    def to_dict(self) -> dict[str, Any]:
        return {
            "hashrate_hs": decimal_str(self.hashrate),
            "hashrate": format_hashrate(self.hashrate),
            "difficulty": decimal_str(self.difficulty),
            "block_subsidy_btc": decimal_str(self.block_subsidy),
            "fees_per_block_btc": decimal_str(self.fees_per_block),
            "uptime": decimal_str(self.uptime),
            "difficulty_change_per_adjustment": decimal_str(self.difficulty_change),
            "next_adjustment": None if self.next_adjustment is None else self.next_adjustment.isoformat(),
            "adjustment_days": self.adjustment_days,
        }


def hashprice_btc(difficulty: Decimal, reward_per_block: Decimal) -> Decimal:
    """BTC earned per PH/s per day: ``10^15 * 86400 * reward / (difficulty * 2^32)``."""
    _positive(difficulty, "difficulty", "difficulty units (dimensionless)")
    with localcontext(_WORK):
        value = PH * SECONDS_PER_DAY * reward_per_block / (difficulty * TWO_32)
    return _OUT.plus(value)


def hashprice_usd(difficulty: Decimal, reward_per_block: Decimal, btc_price: Decimal) -> Decimal:
    """USD per PH/s per day: ``hashprice_btc * btc_price``."""
    _positive(btc_price, "btc_price", "USD per BTC")
    with localcontext(_WORK):
        value = PH * SECONDS_PER_DAY * reward_per_block / (difficulty * TWO_32) * btc_price
    return _OUT.plus(value)


def btc_per_day(inputs: ForecastInputs, difficulty: Decimal | None = None,
                hashrate: Decimal | None = None) -> Decimal:
    """``H * 86400 * reward / (difficulty * 2^32) * uptime`` at ``difficulty`` and ``hashrate``
    (default: the input's)."""
    d = inputs.difficulty if difficulty is None else difficulty
    h = inputs.hashrate if hashrate is None else hashrate
    with localcontext(_WORK):
        value = h * SECONDS_PER_DAY * inputs.reward_per_block / (d * TWO_32) * inputs.uptime
    return _OUT.plus(value)


def difficulty_on(inputs: ForecastInputs, day: date, as_of: date) -> Decimal:
    """The expected difficulty on ``day``: ``D * (1 + g)^k``, ``k`` adjustments after ``as_of``.

    Adjustments fall on ``next_adjustment`` (default ``as_of + adjustment_days``) and every
    ``adjustment_days`` after it; a day before ``as_of`` has the input difficulty.
    """
    if inputs.difficulty_change == 0:
        return inputs.difficulty
    first = inputs.next_adjustment or as_of + timedelta(days=inputs.adjustment_days)
    if day < first:
        return inputs.difficulty
    k = (day - first).days // inputs.adjustment_days + 1
    with localcontext(_WORK):
        value = inputs.difficulty * (1 + inputs.difficulty_change) ** k
    return _OUT.plus(value)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A calendar month, ``2026-12``: days ``start`` (inclusive) to ``end`` (exclusive)."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1970 <= self.year <= 9998:
            raise ValidationError("period", f"not a month: {self.year}-{self.month}")

    @classmethod
    def parse(cls, text: str, field: str = "period") -> Period:
        try:
            year, month = (int(part) for part in text.strip().split("-"))
            return cls(year, month)
        except (ValueError, ValidationError):
            raise ValidationError(field, f"must be a month YYYY-MM like '2026-12', got {text!r}") from None

    @classmethod
    def of(cls, day: date) -> Period:
        return cls(day.year, day.month)

    def plus(self, months: int) -> Period:
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        return self.plus(1).start

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class PeriodForecast:
    """Expected production over ``[start, end)``: total BTC and the per-day figures."""

    start: date
    end: date
    btc: Decimal
    btc_per_day_first: Decimal
    btc_per_day_last: Decimal
    difficulty_first: Decimal
    difficulty_last: Decimal
    effective_hashrate_ph: Decimal
    """The period's average hashing hashrate times uptime, in PH/s: the size a hashprice NDF
    hedge is measured against (with a fleet schedule, deployments, retirements and
    curtailment move it day by day)."""

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
            "btc": decimal_str(self.btc),
            "btc_per_day_first": decimal_str(self.btc_per_day_first),
            "btc_per_day_last": decimal_str(self.btc_per_day_last),
            "difficulty_first": decimal_str(self.difficulty_first),
            "difficulty_last": decimal_str(self.difficulty_last),
            "effective_hashrate_ph": decimal_str(self.effective_hashrate_ph),
        }


def forecast_period(inputs: ForecastInputs, start: date, end: date,
                    as_of: date | None = None) -> PeriodForecast:
    """Production over the days ``start <= day < end``; difficulty steps are counted from ``as_of``
    (default ``start``)."""
    if end <= start:
        raise ValidationError("end", f"must be after start ({start.isoformat()}), got {end.isoformat()}")
    origin = start if as_of is None else as_of
    total = Decimal(0)
    first_day = last_day = Decimal(0)
    first_d = last_d = inputs.difficulty
    day = start
    index = 0
    hashing = Decimal(0)
    with localcontext(_WORK):
        while day < end:
            d = difficulty_on(inputs, day, origin)
            h = inputs.hashrate_on(day)
            hashing += h
            produced = btc_per_day(inputs, d, h)
            total += produced
            if index == 0:
                first_day, first_d = produced, d
            last_day, last_d = produced, d
            day += timedelta(days=1)
            index += 1
        effective = hashing / index * inputs.uptime / PH
    return PeriodForecast(start, end, _OUT.plus(total), first_day, last_day, first_d, last_d,
                          _OUT.plus(effective))
