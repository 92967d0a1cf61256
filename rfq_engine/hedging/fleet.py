"""The fleet behind a forecast (pure): planned hashrate changes, power and energy cost, and
the operating-expense ratio (OER) that sizes an NDF hedge of the operating cost.

    [forecast.fleet]                  # or [programs.<name>.forecast.fleet]
    efficiency = "30"                 # J/TH of the fleet hashing today
    power_price = "75"                # USD/MWh
    uptime_band = ["0.90", "0.98"]    # the low and high uptime of the band (optional)
    [[forecast.fleet.changes]]
    date = 2027-01-15
    kind = "deploy"                   # deploy | retire | curtail
    hashrate = "200 PH/s"
    efficiency = "17.5"               # J/TH of these machines (default: the fleet's)
    [[forecast.fleet.changes]]
    date = 2027-02-01
    kind = "curtail"                  # off from date until the day before `until`
    until = 2027-02-04
    hashrate = "100 PH/s"

DOMAIN.md step 2: watts = TH/s x J/TH, so ``MW = TH/s x J/TH / 10^6``; energy cost =
``MW x 24 x days x USD/MWh``; ``OER = energy cost / revenue`` with revenue = hashprice (USD
per PH/s per day) x PH/s x days; an NDF hedge of the operating cost sells ``OER x H x N``
contracts. Day by day, a deployment adds its hashrate and its watts, a retirement removes
them, a curtailment switches its hashrate off (at the given efficiency, else the fleet's
average that day); uptime scales hashrate and power alike, so the OER does not depend on
it, while production, energy and the contracts do: the band shows them at the low and
the high uptime. Money is rounded to the cent (half even) once, on the period's totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator, model_validator

from rfq_engine.configtypes import STRICT, PositiveDecimalStr
from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.forecast import HASHRATE_UNITS, PH, ForecastInputs, parse_hashrate

__all__ = ["FleetChange", "FleetConfig", "FleetPeriod", "fleet_period", "opex_ratio", "power_mw",
           "uptime_band"]

TH = HASHRATE_UNITS["TH/s"]
CENT = Decimal("0.01")
MAX_CHANGES = 500
Day = date


def _hashrate(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        return parse_hashrate(value, "hashrate")
    except ValidationError as exc:
        raise ValueError(exc.reason) from None


def _jth(value: Decimal) -> Decimal:
    if value > 1000:
        raise ValueError(f"must be J/TH in (0, 1000], got {decimal_str(value)}")
    return value


HashrateStr = Annotated[Decimal, BeforeValidator(_hashrate)]
Efficiency = Annotated[PositiveDecimalStr, AfterValidator(_jth)]


class FleetChange(BaseModel):
    """One dated change of the fleet."""

    model_config = STRICT

    date: Day
    kind: Literal["deploy", "retire", "curtail"]
    hashrate: HashrateStr
    """With its unit, like ``"200 PH/s"``."""
    efficiency: Efficiency | None = None
    """J/TH of these machines; default: the fleet's (its average that day for a curtailment)."""
    until: Day | None = None
    """Curtailment only: the first day the machines hash again."""

    @model_validator(mode="after")
    def _until(self) -> FleetChange:
        if self.kind == "curtail":
            if self.until is None or self.until <= self.date:
                raise ValueError("until: a curtailment needs the first day back, after its date")
        elif self.until is not None:
            raise ValueError(f"until: only a curtailment has an end, not a {self.kind}")
        return self


class FleetConfig(BaseModel):
    """The fleet's efficiency, power price, uptime band and dated changes."""

    model_config = STRICT

    efficiency: Efficiency
    """J/TH of the fleet hashing today."""
    power_price: PositiveDecimalStr
    """USD per MWh."""
    uptime_band: tuple[PositiveDecimalStr, PositiveDecimalStr] | None = None
    changes: list[FleetChange] = Field(default_factory=list, max_length=MAX_CHANGES)

    @field_validator("power_price")
    @classmethod
    def _price(cls, value: Decimal) -> Decimal:
        if value >= Decimal("1E+6"):
            raise ValueError(f"must be USD per MWh below 1,000,000, got {decimal_str(value)}")
        return value

    @field_validator("uptime_band")
    @classmethod
    def _band(cls, value: tuple[Decimal, Decimal] | None) -> tuple[Decimal, Decimal] | None:
        if value is not None and not value[0] <= value[1] <= 1:
            raise ValueError("must be [low, high] fractions of time with low <= high <= 1")
        return value

    def hashrate_changes(self) -> tuple[tuple[date, Decimal], ...]:
        """The deployments (+) and retirements (-) as ``ForecastInputs.hashrate_changes``."""
        return tuple((c.date, c.hashrate if c.kind == "deploy" else -c.hashrate)
                     for c in self.changes if c.kind != "curtail")

    def curtailments(self) -> tuple[tuple[date, date, Decimal], ...]:
        out = []
        for c in self.changes:
            if c.kind == "curtail" and c.until is not None:
                out.append((c.date, c.until, c.hashrate))
        return tuple(out)


def _watts_installed(inputs: ForecastInputs, fleet: FleetConfig, day: date) -> Decimal:
    watts = inputs.hashrate / TH * fleet.efficiency
    for change in fleet.changes:
        if change.kind != "curtail" and change.date <= day:
            sign = 1 if change.kind == "deploy" else -1
            watts += sign * change.hashrate / TH * (change.efficiency or fleet.efficiency)
    return max(watts, Decimal(0))


def power_mw(inputs: ForecastInputs, fleet: FleetConfig, day: date) -> Decimal:
    """The fleet's draw on ``day`` in MW, before uptime: the installed machines' watts minus
    those of the curtailed ones, ``TH/s x J/TH / 10^6``."""
    with localcontext() as ctx:
        ctx.prec = 50
        installed = inputs.installed_on(day)
        watts = _watts_installed(inputs, fleet, day)
        average = watts / installed * TH if installed > 0 else fleet.efficiency
        for change in fleet.changes:
            if change.kind == "curtail" and change.until is not None and change.date <= day < change.until:
                watts -= change.hashrate / TH * (change.efficiency or average)
        return max(watts, Decimal(0)) / Decimal(10) ** 6


@dataclass(frozen=True, slots=True)
class FleetPeriod:
    """A period's hashing, power and energy cost at one uptime."""

    start: date
    end: date
    uptime: Decimal
    ph_days: Decimal
    """Sum over the days of PH/s hashing x uptime: the contracts of a full NDF hedge."""
    mwh: Decimal
    energy_cost: Decimal
    """USD, to the cent."""
    revenue: Decimal | None
    """USD at the hashprice, to the cent (None without a hashprice)."""
    oer: Decimal | None
    """Energy cost / revenue before rounding either, to 10 places."""

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def to_dict(self) -> dict[str, Any]:
        oer = self.oer
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "days": self.days,
                "uptime": decimal_str(self.uptime), "ph_days": decimal_str(self.ph_days),
                "average_ph": decimal_str(_places(self.ph_days / self.days, 8)),
                "average_mw": decimal_str(_places(self.mwh / 24 / self.days, 6)),
                "mwh": decimal_str(_places(self.mwh, 6)), "energy_cost": f"{self.energy_cost:f}",
                "revenue": None if self.revenue is None else f"{self.revenue:f}",
                "oer": None if oer is None else decimal_str(oer),
                "opex_contracts": None if oer is None else decimal_str(_places(oer * self.ph_days, 8))}


def _places(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def opex_ratio(energy_cost: Decimal, revenue: Decimal | None) -> Decimal | None:
    """Operating cost / revenue, to 10 places (None when there is no revenue)."""
    if revenue is None or revenue <= 0:
        return None
    return _places(energy_cost / revenue, 10)


def fleet_period(inputs: ForecastInputs, fleet: FleetConfig, start: date, end: date, *,
                 hashprice_usd: Decimal | None = None, uptime: Decimal | None = None) -> FleetPeriod:
    """Hashing (PH-days), energy (MWh) and its cost, and the revenue at ``hashprice_usd`` (USD
    per PH/s per day), over ``start <= day < end`` at ``uptime`` (default: the forecast's)."""
    if end <= start:
        raise ValidationError("end", f"must be after start ({start.isoformat()}), got {end.isoformat()}")
    u = inputs.uptime if uptime is None else uptime
    if not 0 < u <= 1:
        raise ValidationError("uptime", f"must be a fraction of time in (0, 1], got {decimal_str(u)}")
    with localcontext() as ctx:
        ctx.prec = 50
        ph_days = mwh = Decimal(0)
        day = start
        while day < end:
            ph_days += inputs.hashrate_on(day) * u / PH
            mwh += power_mw(inputs, fleet, day) * u * 24
            day += timedelta(days=1)
        cost = mwh * fleet.power_price
        revenue = None if hashprice_usd is None else hashprice_usd * ph_days
        return FleetPeriod(start, end, u, _places(ph_days, 12), mwh, _places(cost, 2),
                           None if revenue is None else _places(revenue, 2), opex_ratio(cost, revenue))


def uptime_band(inputs: ForecastInputs, fleet: FleetConfig, start: date, end: date, *,
                hashprice_usd: Decimal | None = None) -> list[FleetPeriod]:
    """The period at the band's low uptime, the forecast's, and the band's high (the
    forecast's alone without a band)."""
    uptimes = [inputs.uptime] if fleet.uptime_band is None else sorted(
        {fleet.uptime_band[0], inputs.uptime, fleet.uptime_band[1]})
    return [fleet_period(inputs, fleet, start, end, hashprice_usd=hashprice_usd, uptime=u) for u in uptimes]
