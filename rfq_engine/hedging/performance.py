"""Reporting against the market (pure): each program's hedge P&L beside the unhedged value of
the production it hedges, its P&L over time, and realized production against the forecast.

Per program and period (the periods its decisions hedged):

- **Production** = the realized production where it is recorded (the latest
  ``production.realized`` event of the program and period, or a quantity given to the report),
  else the forecast; ``production_source`` says ``realized`` or ``forecast`` and
  ``realized_source`` ``recorded`` (the event: ``realized_record`` says who and when) or ``given``.
- **Unhedged value** = production x today's price: BTC x spot, or for an NDF program
  PH/s x the period's days x the USD hashprice.
- **Hedge P&L** = realized + unrealized P&L of the fills of the period's RFQs at today's marks
  (``positions.build_positions``).
- **Hedged value** = unhedged value + hedge P&L: what the production is worth with its hedge.
- **Realized** production (the pool's statement), its value at today's price, and
  ``realized / forecast``.

**P&L over time**: after each fill, the program's P&L at today's marks of the fills made so
far (no past marks are kept: the curve shows how the book was built, valued now).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import decimal_str, format_ts
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.inputs import Realized
from rfq_engine.hedging.positions import TradeRecord, build_positions
from rfq_engine.hedging.program import ProgramConfig

__all__ = ["PeriodBook", "hedge_pnl", "program_performance"]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)


def _d(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(_OUT.plus(value))


@dataclass(frozen=True, slots=True)
class PeriodBook:
    """A period a program hedged: its forecast (from the decision) and the fills of its RFQs."""

    period: Period
    forecast: Decimal | None
    trades: Sequence[TradeRecord]


def hedge_pnl(trades: Sequence[TradeRecord], snapshot: MarketSnapshot, today: date,
              settlements: Mapping[str, Decimal] | None = None) -> Decimal:
    """Realized + unrealized P&L (USD) of ``trades`` at the marks."""
    positions = build_positions(trades, snapshot, today, settlements)
    return _OUT.plus(sum((p.realized_pnl + (p.unrealized_pnl or Decimal(0)) for p in positions), Decimal(0)))


def program_performance(name: str, program: ProgramConfig, books: Sequence[PeriodBook],
                        snapshot: MarketSnapshot, today: date, *,
                        realized: Mapping[str, Decimal] | None = None,
                        settlements: Mapping[str, Decimal] | None = None,
                        recorded: Mapping[str, Realized] | None = None) -> dict[str, Any]:
    """The program's rows per period, totals and its P&L over time (see the module docstring);
    ``recorded`` the latest ``production.realized`` by period, ``realized`` quantities given
    (which win over the recorded ones)."""
    recorded = dict(recorded or {})
    given_by_caller = dict(realized or {})
    realized = {**{p: r.quantity for p, r in recorded.items()}, **given_by_caller}
    ndf = program.strategy.is_ndf
    price = snapshot.hashprice if ndf else snapshot.spot.get(program.code)
    rows = []
    totals = {"unhedged_value": Decimal(0), "hedge_pnl": Decimal(0), "hedged_value": Decimal(0)}
    for book in sorted(books, key=lambda b: str(b.period)):
        units = Decimal(book.period.days) if ndf else Decimal(1)
        pnl = hedge_pnl(book.trades, snapshot, today, settlements)
        key = str(book.period)
        given = realized.get(key)
        production = book.forecast if given is None else given
        record = None if given is None or key in given_by_caller else recorded.get(key)
        with localcontext(_WORK):
            unhedged = None if price is None or production is None else production * units * price
            hedged = None if unhedged is None else unhedged + pnl
            realized_value = None if price is None or given is None else given * units * price
            ratio = None if given is None or not book.forecast else given / book.forecast
        rows.append({"program": name, "period": str(book.period), "unit": "PH/s" if ndf else program.code,
                     "forecast": _d(book.forecast), "realized": _d(given),
                     "realized_over_forecast": _d(ratio), "production": _d(production),
                     "production_source": "forecast" if given is None else "realized",
                     "realized_source": None if given is None else "given" if record is None else "recorded",
                     "realized_record": None if record is None else record.to_dict(),
                     "price": _d(price), "unhedged_value": _d(unhedged), "hedge_pnl": _d(pnl),
                     "hedged_value": _d(hedged), "realized_value": _d(realized_value),
                     "fills": len(book.trades)})
        totals["hedge_pnl"] += pnl
        if unhedged is not None and hedged is not None:
            totals["unhedged_value"] += unhedged
            totals["hedged_value"] += hedged
    every = sorted((t for b in books for t in b.trades), key=lambda t: (t.filled_at, t.fill_id))
    timeline = [{"at": format_ts(t.filled_at), "fill_id": t.fill_id,
                 "pnl": _d(hedge_pnl(every[: i + 1], snapshot, today, settlements))}
                for i, t in enumerate(every)]
    return {"program": name, "strategy": program.strategy.value, "price": _d(price), "periods": rows,
            "totals": {k: _d(v) for k, v in totals.items()}, "timeline": timeline}
