"""Scenario analysis: what a hedge pays across prices at expiry, and NDF outcomes at settlement.

Per unit of production at a price ``S`` at expiry (DOMAIN.md, "Instruments"):

| strategy | hedged revenue per unit |
| --- | --- |
| ``unhedged`` | ``S`` |
| ``future`` sold at ``F`` | ``F`` (spot sale at ``S`` plus futures P&L ``F - S``) |
| ``put`` strike ``Kp``, premium ``p`` | ``max(S, Kp) - p`` |
| ``collar`` put ``Kp``, call ``Kc``, net premium ``n`` | ``min(max(S, Kp), Kc) - n`` |

With a hedge ratio ``r`` only that share is hedged: ``r * hedged + (1 - r) * S``. P&L per
unit is revenue minus the all-in cost. ``scenario_table`` reproduces DOMAIN.md's worked
example A.

A hashprice NDF (one contract = 1 PH/s for 1 day) sold at ``U`` settles against the average
hashprice ``R`` over its days: the seller receives ``(U - R) * contracts`` (pays when
negative); the buyer the opposite. ``ndf_table`` reproduces worked example B, including the
hedge of the operating cost only.

Every function is pure, takes and returns ``Decimal`` values, and the ``*_table`` functions
return JSON-ready dicts (decimals as strings) for the CLI, the HTTP API and the web UI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import ENTRY_BOUNDS, decimal_str, parse_decimal

__all__ = [
    "CENT",
    "NdfSide",
    "ScenarioStrategy",
    "Strike",
    "hedged_revenue",
    "ndf_settlement",
    "ndf_table",
    "outcome_per_unit",
    "scenario_table",
]

CENT = Decimal("0.01")
HOURS_PER_DAY = Decimal(24)
_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)


class ScenarioStrategy(StrEnum):
    UNHEDGED = "unhedged"
    FUTURE = "future"
    PUT = "put"
    COLLAR = "collar"


class NdfSide(StrEnum):
    SHORT = "short"
    """Sells hashprice (a miner): receives ``(U - R) * contracts``."""
    LONG = "long"
    """Buys hashprice (a hosting provider that owes hashrate): receives ``(R - U) * contracts``."""


@dataclass(frozen=True, slots=True)
class Strike:
    """A strike written absolutely (``"35000"``) or as a percentage of spot (``"87.5%"``)."""

    value: Decimal
    percent: bool = False

    @classmethod
    def parse(cls, raw: object, field: str) -> Strike:
        if isinstance(raw, Strike):
            return raw
        if isinstance(raw, str) and raw.strip().endswith("%"):
            number = parse_decimal(raw.strip()[:-1].strip(), field, ENTRY_BOUNDS)
            if not 0 < number < 1000:
                raise ValidationError(field, f"a percentage of spot must be in (0%, 1000%), got {raw!r}")
            return cls(number, True)
        number = parse_decimal(raw, field, ENTRY_BOUNDS)
        if number <= 0:
            raise ValidationError(field, f"must be a positive price (quote currency per unit) or a "
                                  f"percentage of spot like '87.5%', got {raw!r}")
        return cls(number, False)

    def resolve(self, spot: Decimal, step: Decimal | None = None) -> Decimal:
        """The strike price: absolute as is; a percentage of ``spot``, rounded to ``step``."""
        if not self.percent:
            return self.value
        with localcontext(_WORK):
            price = spot * self.value / 100
            if step is not None and step > 0:
                price = (price / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * step
        return _OUT.plus(price)

    def __str__(self) -> str:
        return f"{decimal_str(self.value)}%" if self.percent else decimal_str(self.value)


def _money(value: Decimal) -> str:
    return decimal_str(_OUT.plus(value))


def _check_positive(value: Decimal, field: str, unit: str) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise ValidationError(field, f"must be a positive {unit}, got {value!r}")


def _check_ratio(value: Decimal, field: str = "hedge_ratio") -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 1:
        raise ValidationError(field, f"must be a fraction in [0, 1] (0.8 = 80%), got {value!r}")


def outcome_per_unit(
    strategy: ScenarioStrategy | str,
    price: Decimal,
    *,
    future_price: Decimal | None = None,
    put_strike: Decimal | None = None,
    call_strike: Decimal | None = None,
    premium: Decimal = Decimal(0),
) -> Decimal:
    """Revenue per unit sold at ``price`` at expiry, with the strategy's hedge on that unit.

    ``premium`` is what the hedger paid per unit for options (a put's premium, a collar's net
    premium; negative when it received).
    """
    strategy = ScenarioStrategy(strategy)
    if strategy is ScenarioStrategy.UNHEDGED:
        return price
    if strategy is ScenarioStrategy.FUTURE:
        if future_price is None:
            raise ValidationError("future_price", "a future scenario needs the price it was sold at")
        return future_price
    if put_strike is None:
        raise ValidationError("put", f"a {strategy.value} needs a put strike")
    floor = max(price, put_strike)
    if strategy is ScenarioStrategy.PUT:
        return floor - premium
    if call_strike is None:
        raise ValidationError("call", "a collar needs a call strike")
    return min(floor, call_strike) - premium


def hedged_revenue(outcome: Decimal, price: Decimal, hedge_ratio: Decimal) -> Decimal:
    """Revenue per unit of production when ``hedge_ratio`` of it is hedged."""
    with localcontext(_WORK):
        value = hedge_ratio * outcome + (1 - hedge_ratio) * price
    return _OUT.plus(value)


def scenario_table(
    *,
    strategy: ScenarioStrategy | str,
    spot: Decimal,
    cost: Decimal,
    quantity: Decimal,
    prices: Sequence[Decimal],
    future_price: Decimal | None = None,
    put_strike: Strike | Decimal | str | None = None,
    call_strike: Strike | Decimal | str | None = None,
    premium: Decimal = Decimal(0),
    hedge_ratio: Decimal = Decimal(1),
) -> dict[str, Any]:
    """Unhedged vs hedged revenue and P&L at each price at expiry, per unit and in total.

    ``cost`` is the all-in cost per unit, ``quantity`` the production (e.g. 100 BTC). Strikes
    may be absolute or a percentage of ``spot``; a future defaults to being sold at ``spot``.
    The result is JSON-ready: ``rows`` (one per price) and ``chart`` (revenue series for a
    hedged vs unhedged plot).
    """
    strategy = ScenarioStrategy(strategy)
    _check_positive(spot, "spot", "price (quote currency per unit)")
    if not isinstance(cost, Decimal) or not cost.is_finite() or cost < 0:
        raise ValidationError("cost", f"must be a non-negative cost per unit, got {cost!r}")
    _check_positive(quantity, "quantity", "quantity of production (units, e.g. BTC)")
    _check_ratio(hedge_ratio)
    if not prices:
        raise ValidationError("prices", "needs at least one price at expiry")
    for i, price in enumerate(prices):
        _check_positive(price, f"prices[{i}]", "price at expiry")
    kp = None if put_strike is None else Strike.parse(put_strike, "put").resolve(spot)
    kc = None if call_strike is None else Strike.parse(call_strike, "call").resolve(spot)
    if strategy in (ScenarioStrategy.PUT, ScenarioStrategy.COLLAR) and kp is None:
        raise ValidationError("put", f"a {strategy.value} needs a put strike")
    if strategy is ScenarioStrategy.COLLAR:
        if kc is None:
            raise ValidationError("call", "a collar needs a call strike")
        assert kp is not None
        if not kp < kc:
            raise ValidationError("call", f"the call strike {decimal_str(kc)} must be above the put "
                                  f"strike {decimal_str(kp)}")
    sold_at = future_price if future_price is not None else spot
    if strategy is ScenarioStrategy.FUTURE:
        _check_positive(sold_at, "future_price", "price")
    rows = []
    for price in prices:
        outcome = outcome_per_unit(strategy, price, future_price=sold_at, put_strike=kp,
                                   call_strike=kc, premium=premium)
        revenue = hedged_revenue(outcome, price, hedge_ratio)
        with localcontext(_WORK):
            row = {
                "price": _money(price),
                "unhedged_revenue": _money(price),
                "unhedged_pnl": _money(price - cost),
                "hedged_revenue": _money(revenue),
                "hedged_pnl": _money(revenue - cost),
                "hedge_pnl": _money(revenue - price),
                "unhedged_revenue_total": _money(price * quantity),
                "unhedged_pnl_total": _money((price - cost) * quantity),
                "hedged_revenue_total": _money(revenue * quantity),
                "hedged_pnl_total": _money((revenue - cost) * quantity),
                "hedge_pnl_total": _money((revenue - price) * quantity),
            }
        rows.append(row)
    terms: dict[str, Any] = {"premium": _money(premium)}
    if strategy is ScenarioStrategy.FUTURE:
        terms = {"future_price": _money(sold_at)}
    if kp is not None and strategy is not ScenarioStrategy.FUTURE:
        terms["put_strike"] = _money(kp)
    if kc is not None and strategy is ScenarioStrategy.COLLAR:
        terms["call_strike"] = _money(kc)
    if strategy is ScenarioStrategy.UNHEDGED:
        terms = {}
    return {
        "strategy": strategy.value,
        "spot": _money(spot),
        "cost": _money(cost),
        "quantity": _money(quantity),
        "hedge_ratio": _money(hedge_ratio),
        "terms": terms,
        "per_unit": ["price", "unhedged_revenue", "unhedged_pnl", "hedged_revenue", "hedged_pnl",
                     "hedge_pnl"],
        "rows": rows,
        "chart": {
            "x": [r["price"] for r in rows],
            "x_label": "price at expiry",
            "unhedged_revenue": [r["unhedged_revenue_total"] for r in rows],
            "hedged_revenue": [r["hedged_revenue_total"] for r in rows],
        },
    }


def ndf_settlement(side: NdfSide | str, unit_price: Decimal, contracts: Decimal,
                   settlement_rate: Decimal) -> Decimal:
    """What the holder receives at settlement (negative: pays).

    Short (seller): ``(U - R) * contracts``; long (buyer): ``(R - U) * contracts``.
    """
    side = NdfSide(side)
    with localcontext(_WORK):
        value = (unit_price - settlement_rate) * contracts
    return _OUT.plus(value if side is NdfSide.SHORT else -value)


def ndf_table(
    *,
    unit_price: Decimal,
    hashrate_ph: Decimal,
    days: int,
    settle_rates: Sequence[Decimal],
    side: NdfSide | str = NdfSide.SHORT,
    hedge_ratio: Decimal | None = None,
    power_mw: Decimal | None = None,
    power_price: Decimal | None = None,
    opex_only: bool = False,
) -> dict[str, Any]:
    """NDF outcomes at settlement rates (worked example B).

    ``unit_price`` U in USD per PH/s per day, ``hashrate_ph`` H (PH/s, at least 1), ``days``
    N. Contracts = ratio x H x N, with ratio 1 unless ``hedge_ratio`` is given, or, with
    ``opex_only``, the operating expense ratio ``power cost / (U x H x N)`` (power in MW at
    ``power_price`` USD/MWh for N days). For each settlement rate R a row gives the exposure
    (mining revenue ``R x H x N`` for a short; the cost of the hashrate owed, ``-R x H x N``,
    for a long), the NDF's settlement, their total and, with power inputs, the profit.
    ``revenue_floor`` is ``U x contracts``: a short hedger's total never falls below it.
    """
    side = NdfSide(side)
    _check_positive(unit_price, "unit", "unit hashprice (USD per PH/s per day)")
    _check_positive(hashrate_ph, "hashrate_ph", "hashrate in PH/s")
    if hashrate_ph < 1:
        raise ValidationError("hashrate_ph", f"an NDF is at least 1 PH/s, got {decimal_str(hashrate_ph)}")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
        raise ValidationError("days", f"must be a whole number of days 1..3660, got {days!r}")
    if not settle_rates:
        raise ValidationError("settle", "needs at least one settlement rate (USD per PH/s per day)")
    for i, rate in enumerate(settle_rates):
        if not isinstance(rate, Decimal) or not rate.is_finite() or rate < 0:
            raise ValidationError(f"settle[{i}]", f"must be a non-negative rate (USD per PH/s per day), "
                                  f"got {rate!r}")
    has_power = power_mw is not None or power_price is not None
    if has_power:
        if power_mw is None or power_price is None:
            raise ValidationError("power_mw" if power_mw is None else "power_price",
                                  "power needs both the load (MW) and the price (USD/MWh)")
        _check_positive(power_mw, "power_mw", "power load in MW")
        if not isinstance(power_price, Decimal) or not power_price.is_finite() or power_price < 0:
            raise ValidationError("power_price", f"must be a non-negative price in USD/MWh, got "
                                  f"{power_price!r}")
    with localcontext(_WORK):
        full = hashrate_ph * days
        gross = unit_price * full
        mwh = power_mw * HOURS_PER_DAY * days if power_mw is not None else None
        power_cost = mwh * power_price if mwh is not None and power_price is not None else None
        opex_ratio = power_cost / gross if power_cost is not None else None
        if opex_only:
            if opex_ratio is None:
                raise ValidationError("power_mw", "hedging the operating cost only needs the power load "
                                      "(MW) and price (USD/MWh)")
            if hedge_ratio is not None:
                raise ValidationError("hedge_ratio", "give either a hedge ratio or opex-only, not both")
            ratio = min(opex_ratio, Decimal(1))
        else:
            ratio = Decimal(1) if hedge_ratio is None else hedge_ratio
        _check_ratio(ratio)
        contracts = ratio * full
        floor = unit_price * contracts
        rows = []
        for rate in settle_rates:
            exposure = rate * full if side is NdfSide.SHORT else -rate * full
            settlement = ndf_settlement(side, unit_price, contracts, rate)
            total = exposure + settlement
            row = {
                "settlement_rate": _money(rate),
                "exposure": _money(exposure),
                "ndf_settlement": _money(settlement),
                "total": _money(total),
            }
            if power_cost is not None:
                row["profit"] = _money(total - power_cost)
            rows.append(row)
        result: dict[str, Any] = {
            "side": side.value,
            "unit_price": _money(unit_price),
            "hashrate_ph": _money(hashrate_ph),
            "days": days,
            "hedge_ratio": _money(ratio),
            "contracts": _money(contracts),
            "contracts_unhedged_size": _money(full),
            "locked_value": _money(floor),
            "revenue_floor": _money(floor) if side is NdfSide.SHORT else None,
            "cost_cap": _money(floor) if side is NdfSide.LONG else None,
            "opex_only": opex_only,
            "rows": rows,
            "chart": {
                "x": [r["settlement_rate"] for r in rows],
                "x_label": "settlement rate (USD per PH/s per day)",
                "unhedged": [r["exposure"] for r in rows],
                "hedged": [r["total"] for r in rows],
            },
        }
        if power_cost is not None and mwh is not None and opex_ratio is not None:
            profit = floor - power_cost
            result["power"] = {
                "mw": _money(power_mw if power_mw is not None else Decimal(0)),
                "price_per_mwh": _money(power_price if power_price is not None else Decimal(0)),
                "mwh": _money(mwh),
                "cost": _money(power_cost),
                "opex_ratio": _money(opex_ratio),
                "opex_ratio_pct": _money((opex_ratio * 100).quantize(CENT)),
            }
            if side is NdfSide.SHORT:
                result["profit_floor"] = _money(profit)
                result["profit_floor_per_mwh"] = _money((profit / mwh).quantize(CENT))
    return result
