"""Hedge programs as configuration: ``[forecast]`` and ``[programs.<name>]``.

    [forecast]                        # defaults every program inherits, field by field
    hashrate = "1.2 EH/s"             # TH/s, PH/s or EH/s
    difficulty = "110000000000000"
    difficulty_change = "0.02"        # expected change per adjustment (every 14 days)
    block_subsidy = "3.125"           # BTC per block
    fees_per_block = "0.03"           # BTC per block
    uptime = "0.95"

    [programs.monthly-future]
    strategy = "future"               # future | put | collar | future_call | perpetual | ndf_short | ndf_long
    underlying = "BTC"                # default BTC; HASHPRICE for the NDF strategies
    hedge_ratio = "0.5"               # of forecast production, capped by the mandate
    tenor_months = 1                  # the hedge for month P expires in month P + tenor
    mandate = "treasury"
    dealers = ["desk-a", "desk-b", "desk-c"]
    window_ms = 5000
    schedule = "0 14 * * 5L"          # the last Friday of each month, 14:00
    timezone = "UTC"
    approval = false                  # true: a person must approve before anything is sent
    # put_strike = "87.5%"            # put and collar: absolute ("35000") or % of spot
    # call_strike = "125%"            # collar
    [programs.monthly-future.forecast]
    hashrate = "1.5 EH/s"             # overrides [forecast] for this program only

Strict like every section: unknown keys are errors, decimals are quoted strings, the cron
string and the time zone are validated on load, and each message names the field.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from rfq_engine.configtypes import STRICT, DecimalStr, PositiveDecimalStr
from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.cron import CronError, CronSchedule, load_zone
from rfq_engine.hedging.fleet import FleetConfig, HashrateStr
from rfq_engine.hedging.forecast import BLOCK_SUBSIDY, ForecastInputs, Period
from rfq_engine.hedging.scenario import Strike

__all__ = [
    "ForecastConfig",
    "ProgramConfig",
    "Strategy",
    "check_programs",
    "expiry_for",
    "last_weekday",
    "resolve_fleet",
    "resolve_forecast",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Strategy(StrEnum):
    FUTURE = "future"
    """Sell a dated future (a short future hedge), rolled each period."""
    PUT = "put"
    """Buy a protective put."""
    COLLAR = "collar"
    """Buy a put, sell a call: one two-leg RFQ at one net premium."""
    FUTURE_CALL = "future_call"
    """Sell a dated future and buy calls on ``call_ratio`` of it: one two-leg RFQ (the upside
    above the call strike stays with the miner on that share)."""
    PERPETUAL = "perpetual"
    """Sell a perpetual: no expiry and no roll; its funding accrues (``hedging.funding``)."""
    NDF_SHORT = "ndf_short"
    """Sell a hashprice NDF (a miner)."""
    NDF_LONG = "ndf_long"
    """Buy a hashprice NDF (a hosting provider that owes hashrate)."""

    @property
    def is_ndf(self) -> bool:
        return self in (Strategy.NDF_SHORT, Strategy.NDF_LONG)

    @property
    def is_option(self) -> bool:
        return self in (Strategy.PUT, Strategy.COLLAR)


def _strike(value: Any) -> Strike:
    if isinstance(value, float):
        raise ValueError(f'must be a quoted price like "35000" or a percentage like "87.5%", not a '
                         f"float {value}")
    try:
        return Strike.parse(value, "strike")
    except ValidationError as exc:
        raise ValueError(exc.reason) from None


StrikeStr = Annotated[Strike, BeforeValidator(_strike)]


class ForecastConfig(BaseModel):
    """Forecast inputs. In ``[forecast]`` they are defaults; under a program they override."""

    model_config = STRICT

    hashrate: HashrateStr | None = None
    """With its unit: ``"50 PH/s"``, ``"1.2 EH/s"``, ``"800 TH/s"``."""
    difficulty: PositiveDecimalStr | None = None
    difficulty_change: DecimalStr | None = None
    next_adjustment: date | None = None
    adjustment_days: StrictInt | None = Field(default=None, ge=1, le=366)
    block_subsidy: DecimalStr | None = None
    fees_per_block: DecimalStr | None = None
    uptime: DecimalStr | None = None
    fleet: FleetConfig | None = None
    """Efficiency, power price, uptime band and dated hashrate changes (``hedging.fleet``)."""

    @field_validator("hashrate")
    @classmethod
    def _positive_hashrate(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value <= 0:
            raise ValueError("must be a positive hashrate like '50 PH/s'")
        return value

    @field_validator("uptime")
    @classmethod
    def _uptime(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not 0 < value <= 1:
            raise ValueError(f"must be a fraction of time in (0, 1] (0.95 = 95%), got {decimal_str(value)}")
        return value

    @field_validator("block_subsidy", "fees_per_block")
    @classmethod
    def _btc(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError(f"must be a non-negative number of BTC per block, got {decimal_str(value)}")
        return value

    @field_validator("difficulty_change")
    @classmethod
    def _change(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value <= -1:
            raise ValueError("must be a relative change per adjustment greater than -1 (0.02 = +2%), "
                             f"got {decimal_str(value)}")
        return value

    def merged(self, override: ForecastConfig | None) -> ForecastConfig:
        """This config with every field ``override`` sets replaced."""
        if override is None:
            return self
        data = {k: getattr(self, k) for k in ForecastConfig.model_fields}
        data.update({k: getattr(override, k) for k in override.model_fields_set})
        return ForecastConfig.model_validate(data)


def resolve_forecast(defaults: ForecastConfig | None, override: ForecastConfig | None,
                     where: str = "forecast") -> ForecastInputs:
    """The program's ``ForecastInputs``; a missing hashrate or difficulty names its field."""
    merged = (defaults or ForecastConfig()).merged(override)
    if merged.hashrate is None:
        raise ValidationError(f"{where}.hashrate", "is required (in [forecast] or the program's "
                              "forecast table), with its unit, like '50 PH/s'")
    if merged.difficulty is None:
        raise ValidationError(f"{where}.difficulty", "is required (in [forecast] or the program's "
                              "forecast table): the network difficulty, e.g. '110000000000000'")
    extra: dict[str, Any] = {}
    if merged.adjustment_days is not None:
        extra["adjustment_days"] = merged.adjustment_days
    return ForecastInputs(
        hashrate=merged.hashrate,
        difficulty=merged.difficulty,
        block_subsidy=BLOCK_SUBSIDY if merged.block_subsidy is None else merged.block_subsidy,
        fees_per_block=Decimal(0) if merged.fees_per_block is None else merged.fees_per_block,
        uptime=Decimal(1) if merged.uptime is None else merged.uptime,
        difficulty_change=Decimal(0) if merged.difficulty_change is None else merged.difficulty_change,
        next_adjustment=merged.next_adjustment,
        hashrate_changes=() if merged.fleet is None else merged.fleet.hashrate_changes(),
        curtailments=() if merged.fleet is None else merged.fleet.curtailments(),
        **extra,
    )


def resolve_fleet(defaults: ForecastConfig | None, override: ForecastConfig | None) -> FleetConfig | None:
    """The program's fleet: its forecast table's, else ``[forecast.fleet]``, else None."""
    return (defaults or ForecastConfig()).merged(override).fleet


def last_weekday(year: int, month: int, weekday: int) -> date:
    """The last ``weekday`` (0 = Monday .. 4 = Friday) of the month."""
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def expiry_for(period: Period, tenor_months: int, rule: str = "last_friday") -> date:
    """The expiry of the contract that hedges ``period``: in month ``period + tenor_months``,
    on its last Friday (``last_friday``, the usual monthly expiry) or last day (``month_end``).
    """
    month = period.plus(tenor_months)
    if rule == "month_end":
        return date(month.year, month.month, month.days)
    return last_weekday(month.year, month.month, 4)


class ProgramConfig(BaseModel):
    """One hedge program (see the module docstring)."""

    model_config = STRICT

    strategy: Strategy
    mandate: str
    dealers: list[str] = Field(min_length=1)
    hedge_ratio: PositiveDecimalStr
    schedule: str
    timezone: str = "UTC"
    underlying: str | None = None
    quote_ccy: str = "USD"
    tenor_months: StrictInt = Field(default=1, ge=1, le=24)
    expiry_rule: Literal["last_friday", "month_end"] = "last_friday"
    put_strike: StrikeStr | None = None
    call_strike: StrikeStr | None = None
    call_ratio: PositiveDecimalStr = Decimal(1)
    """``future_call``: the calls bought per future sold, in (0, 1]."""
    strike_step: PositiveDecimalStr = Decimal(100)
    """A strike given as a percentage of spot is rounded to a multiple of this."""
    window_ms: StrictInt = Field(default=5000, ge=50, le=600_000)
    approval: StrictBool = False
    """True: the scheduler only proposes; a person runs ``rfq hedge plan NAME --approver ME``."""
    lot_size: PositiveDecimalStr = Decimal("0.01")
    """Hedge sizes are rounded down to a multiple of this (BTC, or PH/s for an NDF)."""
    allow_partial: StrictBool = False
    limit_price: DecimalStr | None = None
    enabled: StrictBool = True
    ladder: tuple[PositiveDecimalStr, ...] | None = Field(default=None, min_length=1, max_length=12)
    """Hedge ratios by months ahead: ``["0.6", "0.4", "0.2"]`` hedges 60% of month +1, 40% of
    +2 and 20% of +3 at each scheduled run (at most 12); the first is the ``hedge_ratio``."""
    basis_risk: str | None = Field(default=None, max_length=500)
    """The basis risk the program accepts, in words (shown with its decisions)."""
    opex_hedge: StrictBool = False
    """``ndf_short`` only: hedge the operating cost, the ratio being the fleet forecast's
    operating-expense ratio (``hedging.fleet``), at most ``hedge_ratio`` and the mandate's."""
    forecast: ForecastConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _first_rung(cls, data: Any) -> Any:
        """With a ladder and no ``hedge_ratio``, the ratio is the ladder's first rung."""
        if isinstance(data, dict) and "hedge_ratio" not in data and isinstance(data.get("ladder"), list) \
                and data["ladder"]:
            return {**data, "hedge_ratio": data["ladder"][0]}
        return data

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, value: tuple[Decimal, ...] | None) -> tuple[Decimal, ...] | None:
        if value is not None and any(r > 1 for r in value):
            raise ValueError("each rung is a fraction of that month's forecast production in (0, 1]")
        return value

    @field_validator("hedge_ratio")
    @classmethod
    def _ratio(cls, value: Decimal) -> Decimal:
        if value > 1:
            raise ValueError(f"must be a fraction of forecast production in (0, 1], got {decimal_str(value)}")
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            return CronSchedule.parse(value).expression
        except CronError as exc:
            raise ValueError(str(exc).removeprefix("schedule: ")) from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            load_zone(value)
        except CronError as exc:
            raise ValueError(str(exc).removeprefix("time zone: ")) from None
        return value.strip()

    @field_validator("underlying", "quote_ccy")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if not code or len(code) > 16:
            raise ValueError(f"must be an asset code like 'BTC', got {value!r}")
        return code

    @field_validator("dealers")
    @classmethod
    def _dealers(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("lists a dealer twice")
        return value

    @model_validator(mode="after")
    def _terms(self) -> ProgramConfig:
        option = self.strategy.is_option
        if option and self.put_strike is None:
            raise ValueError(f"put_strike: a {self.strategy.value} program needs a put strike "
                             "(\"35000\" or \"87.5%\" of spot)")
        if self.strategy is Strategy.COLLAR:
            if self.call_strike is None:
                raise ValueError("call_strike: a collar program needs a call strike")
            put, call = self.put_strike, self.call_strike
            assert put is not None
            if put.percent == call.percent and not put.value < call.value:
                raise ValueError(f"call_strike: {call} must be above the put strike {put}")
        elif self.strategy is Strategy.FUTURE_CALL:
            if self.call_strike is None:
                raise ValueError("call_strike: a future_call program needs the strike of the calls it "
                                 "buys (\"50000\" or \"125%\" of spot)")
        elif self.call_strike is not None:
            raise ValueError(f"call_strike: only a collar or a future_call has a call strike, not a "
                             f"{self.strategy.value}")
        if self.call_ratio > 1:
            raise ValueError(f"call_ratio: calls per future sold, in (0, 1], got "
                             f"{decimal_str(self.call_ratio)}")
        if not option and self.put_strike is not None:
            raise ValueError(f"put_strike: a {self.strategy.value} program has no strike")
        if self.ladder is not None and self.ladder[0] != self.hedge_ratio:
            raise ValueError(f"ladder: its first rung {decimal_str(self.ladder[0])} is the hedge ratio of "
                             f"month +1; hedge_ratio says {decimal_str(self.hedge_ratio)} (give one of them)")
        if self.opex_hedge and self.strategy is not Strategy.NDF_SHORT:
            raise ValueError(f"opex_hedge: only an ndf_short program hedges its operating cost, not a "
                             f"{self.strategy.value}")
        CronSchedule.parse(self.schedule, self.timezone)
        return self

    @property
    def code(self) -> str:
        """The underlying: as configured, else ``HASHPRICE`` for an NDF and ``BTC`` otherwise."""
        if self.underlying is not None:
            return self.underlying
        return "HASHPRICE" if self.strategy.is_ndf else "BTC"

    @property
    def lot(self) -> Decimal:
        """The size step: ``lot_size``, at least 1 PH/s for an NDF."""
        return max(self.lot_size, Decimal(1)) if self.strategy.is_ndf else self.lot_size

    @property
    def rungs(self) -> tuple[Decimal, ...]:
        """The hedge ratio of month +1, +2, ...: the ladder, else ``(hedge_ratio,)``."""
        return self.ladder if self.ladder is not None else (self.hedge_ratio,)

    @property
    def cron(self) -> CronSchedule:
        return CronSchedule.parse(self.schedule, self.timezone)


def check_programs(programs: Mapping[str, ProgramConfig], mandates: Mapping[str, Any],
                   dealer_ids: Iterable[str], forecast: ForecastConfig | None) -> None:
    """Cross-section checks (raises ``ValueError`` naming ``programs.<name>.<field>``): the
    name is usable in ids, the mandate exists and approves the dealers, the dealers are
    configured, and the forecast inputs are complete."""
    configured = set(dealer_ids)
    for name, program in programs.items():
        where = f"programs.{name}"
        if not _NAME.match(name):
            raise ValueError(f"{where}: a program name is letters, digits, '.', '_' or '-' (at most 64)")
        mandate = mandates.get(program.mandate)
        if mandate is None:
            known = ", ".join(sorted(mandates)) or "none"
            raise ValueError(f"{where}.mandate: unknown mandate {program.mandate!r}; configured: {known}")
        unknown = sorted(set(program.dealers) - configured)
        if unknown:
            raise ValueError(f"{where}.dealers: {', '.join(unknown)} not configured under [[dealers]]")
        approved = set(getattr(mandate, "dealers", {}) or {})
        outside = sorted(set(program.dealers) - approved)
        if outside:
            raise ValueError(f"{where}.dealers: {', '.join(outside)} not approved by mandate "
                             f"{program.mandate!r}")
        try:
            resolve_forecast(forecast, program.forecast, f"{where}.forecast")
        except ValidationError as exc:
            raise ValueError(f"{exc.field}: {exc.reason}") from None
        if program.opex_hedge and resolve_fleet(forecast, program.forecast) is None:
            raise ValueError(f"{where}.opex_hedge: needs a fleet ([forecast.fleet] or the program's "
                             "forecast.fleet) with its efficiency (J/TH) and power price (USD/MWh)")
