"""JSON-ready reports for the CLI, the HTTP API and the web UI (pure; decimals as strings).

- ``positions_report``: positions per instrument with marks and P&L, roll results, and each
  program's hedge coverage (hedged quantity / forecast production) per period.
- ``forecast_report``: a forecast's inputs, BTC per day, hashprice (BTC and USD per PH/s per
  day) and production per period.
- ``scenario_table`` and ``ndf_table`` live in ``rfq_engine.hedging.scenario``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.forecast import (
    ForecastInputs,
    Period,
    btc_per_day,
    forecast_period,
    hashprice_btc,
    hashprice_usd,
)
from rfq_engine.hedging.planner import requester_for
from rfq_engine.hedging.positions import TradeRecord, build_positions, net_quantities
from rfq_engine.hedging.program import ForecastConfig, ProgramConfig, resolve_forecast
from rfq_engine.hedging.rolls import roll_results
from rfq_engine.hedging.targets import hedged_quantity

__all__ = ["coverage", "forecast_report", "positions_report"]


def forecast_report(inputs: ForecastInputs, periods: Sequence[Period], *, as_of: date,
                    btc_price: Decimal | None = None) -> dict[str, Any]:
    """The forecast of each period, with today's BTC/day and hashprice."""
    reward = inputs.reward_per_block
    out: dict[str, Any] = {
        "inputs": inputs.to_dict(),
        "as_of": as_of.isoformat(),
        "btc_per_day": decimal_str(btc_per_day(inputs)),
        "hashprice_btc_per_ph_day": decimal_str(hashprice_btc(inputs.difficulty, reward)),
        "hashprice_usd_per_ph_day": None,
        "btc_price": None if btc_price is None else decimal_str(btc_price),
        "periods": [],
    }
    if btc_price is not None:
        out["hashprice_usd_per_ph_day"] = decimal_str(hashprice_usd(inputs.difficulty, reward, btc_price))
    for period in periods:
        forecast = forecast_period(inputs, period.start, period.end, as_of=as_of)
        row = {"period": str(period), **forecast.to_dict()}
        if btc_price is not None:
            row["usd_at_btc_price"] = decimal_str(forecast.btc * btc_price)
        out["periods"].append(row)
    return out


def coverage(name: str, program: ProgramConfig, trades: Sequence[TradeRecord],
             forecast_defaults: ForecastConfig | None, periods: Sequence[Period],
             as_of: date) -> list[dict[str, Any]]:
    """Hedged quantity / forecast production per period, from the program's own fills."""
    requester = requester_for(name)
    holdings = net_quantities(t for t in trades if t.spec.requester == requester)
    inputs = resolve_forecast(forecast_defaults, program.forecast, f"programs.{name}.forecast")
    rows = []
    for period in periods:
        forecast = forecast_period(inputs, period.start, period.end, as_of=as_of)
        quantity = forecast.effective_hashrate_ph if program.strategy.is_ndf else forecast.btc
        held = hedged_quantity(program, period, holdings)
        rows.append({
            "program": name,
            "period": str(period),
            "strategy": program.strategy.value,
            "unit": "PH/s" if program.strategy.is_ndf else program.code,
            "forecast": decimal_str(quantity),
            "hedged": decimal_str(held),
            "coverage": decimal_str(held / quantity) if quantity > 0 else None,
            "target_ratio": decimal_str(program.hedge_ratio),
        })
    return rows


def positions_report(
    trades: Sequence[TradeRecord],
    snapshot: MarketSnapshot,
    today: date,
    *,
    settlements: Mapping[str, Decimal] | None = None,
    programs: Mapping[str, ProgramConfig] | None = None,
    forecast_defaults: ForecastConfig | None = None,
) -> dict[str, Any]:
    """Positions, totals, roll results and program coverage for this and next month."""
    positions = build_positions(trades, snapshot, today, settlements)
    realized = sum((p.realized_pnl for p in positions), Decimal(0))
    unrealized = sum((p.unrealized_pnl or Decimal(0) for p in positions), Decimal(0))
    periods = [Period.of(today), Period.of(today).plus(1)]
    covered = []
    for name, program in (programs or {}).items():
        covered.extend(coverage(name, program, trades, forecast_defaults, periods, today))
    return {
        "as_of": today.isoformat(),
        "market_as_of": snapshot.as_of.isoformat(),
        "positions": [p.to_dict() for p in positions],
        "totals": {"realized_pnl": decimal_str(realized), "unrealized_pnl": decimal_str(unrealized),
                   "total_pnl": decimal_str(realized + unrealized)},
        "rolls": [r.to_dict() for r in roll_results(trades)],
        "coverage": covered,
        "fills": len(trades),
    }
