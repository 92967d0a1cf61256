"""The hedge file of one program and period: the evidence an auditor or a lender asks for (pure).

``build_hedge_file`` takes what the store holds (the period's ``program.decided`` events, the
fills of the RFQs they sent with their decision records, the audit chain's verified head) and
the market, and returns one JSON-ready dict (decimals as strings):

- ``designation``: objective, hedged item (the period's forecast production), instrument(s),
  hedge ratio (the program's, and the one the decision applied) and the effectiveness method;
- ``trades``: each fill with its decision record's summary (quotes, winner, cover, slippage);
- ``effectiveness``: critical terms, the dollar offset since the decision (the item at the
  decision's spot against today's, the hedge's P&L), and a regression of the hedge's value
  changes on the item's over the price moves of the shock grid (``effectiveness``);
- ``production``: realized against forecast (realized: the pool's statement, given or the
  latest ``production.realized`` event; ``source`` says ``recorded``, ``given`` or ``forecast``);
- ``chain``: the head sequence and hash of the verified audit chain the file was built from.

``to_csv`` and ``to_jsonl`` flatten it into ``section, key, value`` rows and one JSON object per
record; ``rfq_engine.hedging.hedgepdf`` lays it out as a PDF.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.instruments import HashpriceNdf, last_date
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.effectiveness import (
    OFFSET_BAND,
    R_SQUARED_MIN,
    critical_terms,
    dollar_offset,
    offset_effective,
    regression,
)
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.margin import DEFAULT_SHOCKS, shocked
from rfq_engine.hedging.positions import TradeRecord, build_positions, instrument_key, leg_trades
from rfq_engine.hedging.program import ProgramConfig, Strategy

__all__ = ["OBJECTIVES", "build_hedge_file", "to_csv", "to_jsonl"]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)

OBJECTIVES = {
    Strategy.FUTURE: "Fix the USD value of part of the period's forecast BTC production by selling "
                     "BTC futures (a cash-flow hedge of forecast sales).",
    Strategy.PUT: "Floor the USD value of part of the period's forecast BTC production by buying puts.",
    Strategy.COLLAR: "Keep the USD value of part of the period's forecast BTC production between the "
                     "put and the call strikes (a collar).",
    Strategy.FUTURE_CALL: "Fix the USD value of part of the period's forecast BTC production by "
                          "selling BTC futures, keeping the upside above the call strike on a "
                          "share of it with long calls.",
    Strategy.PERPETUAL: "Fix the USD value of part of the forecast BTC production by selling a "
                        "BTC perpetual, resized each period; its funding accrues.",
    Strategy.NDF_SHORT: "Fix the hashprice revenue of part of the period's hashrate by selling hashprice "
                        "NDFs.",
    Strategy.NDF_LONG: "Fix the hashprice cost of the hashrate owed over the period by buying hashprice "
                       "NDFs.",
}


def _d(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(_OUT.plus(value))


def _quantity(forecast: Mapping[str, Any] | None) -> Decimal | None:
    if not isinstance(forecast, Mapping) or forecast.get("quantity") is None:
        return None
    return Decimal(str(forecast["quantity"]))


def _summary(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """What an auditor reads first in a decision record."""
    if record is None:
        return {"state": None}
    awards = record.get("awards") or []
    winner = awards[-1] if awards else {}
    quotes = [q for q in record.get("quotes") or [] if q.get("status") == "received"]
    verdicts = record.get("pre_trade") or []
    return {
        "state": record.get("state"), "reason": record.get("reason"),
        "submitted_at": record.get("submitted_at"), "requester": record.get("requester"),
        "dealers_asked": list(record.get("dealers_asked") or []), "quotes": len(quotes),
        "winner": winner.get("dealer_id"), "award_price": winner.get("price"),
        "cover_price": winner.get("cover_price"),
        "mandate": "pass" if all(v.get("passed", False) for v in verdicts) else "fail",
        "slippage_bps": record.get("slippage_bps"),
    }


def _pnl(trades: Sequence[TradeRecord], snapshot: MarketSnapshot, today: date,
         settlements: Mapping[str, Decimal]) -> Decimal:
    positions = build_positions(trades, snapshot, today, settlements)
    return sum((p.realized_pnl + (p.unrealized_pnl or Decimal(0)) for p in positions), Decimal(0))


def _price(snapshot: MarketSnapshot, underlying: str) -> Decimal | None:
    if underlying.upper() == "HASHPRICE":
        return snapshot.hashprice
    return snapshot.spot.get(underlying.upper())


def build_hedge_file(
    *,
    name: str,
    program: ProgramConfig,
    period: Period,
    decisions: Sequence[Mapping[str, Any]],
    trades: Sequence[TradeRecord],
    records: Mapping[str, Mapping[str, Any]],
    snapshot: MarketSnapshot,
    today: date,
    head_seq: int,
    head_hash: str,
    realized: Decimal | None = None,
    settlements: Mapping[str, Decimal] | None = None,
    shocks: Sequence[Decimal] = DEFAULT_SHOCKS,
    realized_record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The hedge file (see the module docstring). ``decisions`` are the period's
    ``program.decided`` payloads oldest first; ``trades`` the fills of the RFQs they sent."""
    settlements = dict(settlements or {})
    sent = [d for d in decisions if not d.get("dry_run")]
    acting = next((d for d in reversed(sent) if d.get("action") not in ("error", "wait")), None)
    underlying = program.code if not program.strategy.is_ndf else "HASHPRICE"
    forecast_qty = _quantity(acting.get("forecast") if acting else None)
    legs = [leg for trade in trades for leg in leg_trades(trade, snapshot, today)]
    instruments = sorted({instrument_key(leg.instrument) for leg in legs})
    with localcontext(_WORK):
        hedged = _OUT.plus(sum((leg.quantity for leg in legs
                                if leg.instrument.underlying.upper() == underlying.upper()
                                and not _is_call(leg)), Decimal(0)))
    last = max((d for leg in legs if (d := last_date(leg.instrument)) is not None), default=None)
    period_last = (period.end - timedelta(days=1)).isoformat()
    designated = abs(hedged)
    if program.strategy.is_ndf and legs:
        ndf = next(leg.instrument for leg in legs if isinstance(leg.instrument, HashpriceNdf))
        assert isinstance(ndf, HashpriceNdf)
        units = Decimal(ndf.days)
    else:
        units = Decimal(1)
    ratio_applied = acting.get("hedge_ratio") if acting else None

    # --- effectiveness: dollar offset since the decision, regression over the shock grid
    now_price = _price(snapshot, underlying)
    start_price = None
    if acting is not None and acting.get("spot") is not None and not program.strategy.is_ndf:
        start_price = Decimal(str(acting["spot"]))
    elif legs:  # an NDF's item is the hashrate's revenue: its reference is the unit price traded
        start_price = legs[0].price
    pnl_now = _pnl(trades, snapshot, today, settlements) if trades else Decimal(0)
    offset: dict[str, Any] = {"item_change": None, "hedge_change": _d(pnl_now), "ratio": None,
                              "effective": None, "band": [_d(OFFSET_BAND[0]), _d(OFFSET_BAND[1])]}
    if start_price is not None and now_price is not None and trades:
        with localcontext(_WORK):
            item_change = _OUT.plus(designated * units * (now_price - start_price))
        ratio = dollar_offset(pnl_now, item_change)
        offset.update(item_change=_d(item_change), item_price_then=_d(start_price),
                      item_price_now=_d(now_price), ratio=_d(ratio), effective=offset_effective(ratio))
    xs: list[Decimal] = []
    ys: list[Decimal] = []
    points = []
    if trades and now_price is not None:
        for shock in shocks:
            market = shocked(snapshot, shock)
            moved = _price(market, underlying)
            if moved is None:
                continue
            with localcontext(_WORK):
                x = _OUT.plus(designated * units * (moved - now_price))
                y = _OUT.plus(_pnl(trades, market, today, settlements) - pnl_now)
            xs.append(x)
            ys.append(y)
            points.append({"shock": _d(shock), "price": _d(moved), "item_change": _d(x),
                           "hedge_change": _d(y)})
    fit = regression(xs, ys)
    terms = critical_terms(item_underlying=underlying, item_quantity=forecast_qty or Decimal(0),
                           period_end=period_last,
                           hedge_underlying=legs[0].instrument.underlying if legs else None,
                           hedge_quantity=hedged, hedge_last_date=None if last is None else last.isoformat())

    trade_rows = []
    for trade in sorted(trades, key=lambda t: (t.filled_at, t.fill_id)):
        keys = [instrument_key(leg.instrument) for leg in trade.spec.legs]
        trade_rows.append({
            "fill_id": trade.fill_id, "rfq_id": trade.rfq_id, "instruments": keys,
            "side": trade.spec.requester_side.value,
            "quantity": _d(trade.quantity), "price": _d(trade.price), "dealer": trade.dealer_id,
            "filled_at": trade.filled_at.isoformat().replace("+00:00", "Z"),
            "decision": _summary(records.get(trade.rfq_id)),
        })
    production: dict[str, Any] = {"unit": "PH/s" if program.strategy.is_ndf else underlying,
                                  "forecast": _d(forecast_qty), "realized": _d(realized),
                                  "difference": None, "realized_over_forecast": None,
                                  "hedged": _d(designated), "hedge_ratio_on_forecast": None,
                                  "hedge_ratio_on_realized": None,
                                  "source": "forecast" if realized is None else
                                  "recorded" if realized_record is not None else "given",
                                  "realized_record": None if realized_record is None
                                  else dict(realized_record)}
    with localcontext(_WORK):
        if forecast_qty:
            production["hedge_ratio_on_forecast"] = _d(designated / forecast_qty)
        if realized is not None and forecast_qty is not None:
            production["difference"] = _d(realized - forecast_qty)
            if forecast_qty:
                production["realized_over_forecast"] = _d(realized / forecast_qty)
        if realized:
            production["hedge_ratio_on_realized"] = _d(designated / realized)
    return {
        "program": name, "period": str(period), "as_of": today.isoformat(),
        "designation": {
            "objective": OBJECTIVES[program.strategy],
            "hedged_item": f"forecast production of {period} ({period.start.isoformat()} to "
                           f"{period_last}): {_d(forecast_qty) or 'not forecast'} {production['unit']}",
            "strategy": program.strategy.value,
            "instruments": instruments,
            "hedge_ratio": _d(program.hedge_ratio),
            "hedge_ratio_applied": ratio_applied,
            "effectiveness_method": (
                f"critical terms; dollar offset in [{_d(OFFSET_BAND[0])}, {_d(OFFSET_BAND[1])}]; "
                f"regression of the hedge's value changes on the hedged item's over the shock grid "
                f"(slope in [-{_d(OFFSET_BAND[1])}, -{_d(OFFSET_BAND[0])}], R^2 >= {_d(R_SQUARED_MIN)})"),
        },
        "decisions": [{"trigger": d.get("trigger"), "action": d.get("action"),
                       "scheduled_for": d.get("scheduled_for"), "target": d.get("target"),
                       "held": d.get("held"), "spot": d.get("spot"),
                       "reasons": list(d.get("reasons") or [])} for d in sent],
        "trades": trade_rows,
        "effectiveness": {"critical_terms": terms, "dollar_offset": offset,
                          "regression": {**fit.to_dict(), "points": points}},
        "production": production,
        "market": {"as_of": snapshot.as_of.isoformat().replace("+00:00", "Z"),
                   "price": _d(now_price)},
        "chain": {"head_seq": head_seq, "head_hash": head_hash},
    }


def _is_call(leg: Any) -> bool:
    """A collar's sold call is not the hedged quantity (the put is)."""
    option_type = getattr(leg.instrument, "option_type", None)
    return option_type is not None and option_type.value == "call"


def _flat(prefix: str, value: Any, out: list[tuple[str, str, str]], section: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out, section)
    elif isinstance(value, list) and value and isinstance(value[0], Mapping):
        for i, v in enumerate(value):
            _flat(f"{prefix}[{i}]", v, out, section)
    elif isinstance(value, list):
        out.append((section, prefix, "; ".join(str(v) for v in value)))
    else:
        out.append((section, prefix, "" if value is None else str(value).lower()
                    if isinstance(value, bool) else str(value)))


def to_csv(hedge_file: Mapping[str, Any]) -> str:
    """``section,key,value`` rows: every figure of the file, one per row."""
    rows: list[tuple[str, str, str]] = []
    for section in ("program", "period", "as_of"):
        rows.append(("file", section, str(hedge_file[section])))
    for section in ("designation", "decisions", "trades", "effectiveness", "production", "market", "chain"):
        _flat("", hedge_file[section], rows, section)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("section", "key", "value"))
    writer.writerows(rows)
    return buffer.getvalue()


def to_jsonl(hedge_file: Mapping[str, Any]) -> str:
    """One JSON object a line: the header, each decision, each trade, then the tests,
    production and the chain (each with its ``record`` kind)."""
    head = {"record": "hedge_file", "program": hedge_file["program"], "period": hedge_file["period"],
            "as_of": hedge_file["as_of"], "designation": hedge_file["designation"]}
    lines = [head]
    lines += [{"record": "decision", **d} for d in hedge_file["decisions"]]
    lines += [{"record": "trade", **t} for t in hedge_file["trades"]]
    lines.append({"record": "effectiveness", **hedge_file["effectiveness"]})
    lines.append({"record": "production", **hedge_file["production"]})
    lines.append({"record": "chain", **hedge_file["chain"], "market": hedge_file["market"]})
    return "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines)
