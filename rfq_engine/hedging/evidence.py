"""Reading a hedge file's evidence, and each program's books, from the audit store (read-only).

The period's ``program.decided`` events, the fills of the RFQs they sent, each RFQ's decision
record from its own events, and the chain's head, from ``store.verify()``: a file is only
built from a chain that verifies (``ValidationError`` otherwise, naming the first bad event).
The realized production is the one given, else the latest ``production.realized`` recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.events import encode
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.hedgefile import build_hedge_file
from rfq_engine.hedging.performance import PeriodBook, program_performance
from rfq_engine.hedging.planner import requester_for
from rfq_engine.hedging.positions import TradeRecord
from rfq_engine.hedging.program import ProgramConfig
from rfq_engine.hedging.records import load_inputs, load_trades, program_decisions
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.store.base import AuditStore, EventFilter

__all__ = ["load_hedge_file", "load_performance", "period_books"]


def _acting(decisions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((d for d in reversed(decisions) if d.get("action") not in ("error", "wait")), None)


async def period_books(store: AuditStore, name: str, trades: Sequence[TradeRecord] | None = None
                       ) -> list[PeriodBook]:
    """Each period the program decided (not in a dry run): its forecast and the fills of its RFQs."""
    trades = list(trades) if trades is not None else await load_trades(store, requester_for(name))
    by_period: dict[str, list[dict[str, Any]]] = {}
    for event in await program_decisions(store, name):
        if not event.dry_run:
            by_period.setdefault(event.period, []).append(encode(event))
    books = []
    for period, decisions in sorted(by_period.items()):
        rfq_ids = {str(r["rfq_id"]) for d in decisions for r in d.get("rfqs") or []
                   if isinstance(r, dict) and r.get("rfq_id")}
        acting = _acting(decisions)
        forecast = acting.get("forecast") if acting else None
        quantity = forecast.get("quantity") if isinstance(forecast, Mapping) else None
        books.append(PeriodBook(Period.parse(period), None if quantity is None else Decimal(str(quantity)),
                                [t for t in trades if t.rfq_id in rfq_ids]))
    return books


async def load_performance(store: AuditStore, programs: Mapping[str, ProgramConfig],
                           snapshot: MarketSnapshot, today: date, *,
                           realized: Mapping[str, Mapping[str, Decimal]] | None = None,
                           settlements: Mapping[str, Decimal] | None = None) -> list[dict[str, Any]]:
    """``performance.program_performance`` of every program; ``realized`` by program, then period
    (given: it wins over the ``production.realized`` events recorded)."""
    out = []
    inputs = await load_inputs(store)
    for name, program in programs.items():
        books = await period_books(store, name)
        out.append(program_performance(name, program, books, snapshot, today,
                                       realized=(realized or {}).get(name), settlements=settlements,
                                       recorded=inputs.realized(name)))
    return out


async def load_hedge_file(store: AuditStore, *, name: str, program: ProgramConfig, period: Period,
                          snapshot: MarketSnapshot, today: date, realized: Decimal | None = None,
                          settlements: Mapping[str, Decimal] | None = None) -> dict[str, Any]:
    report = await store.verify()
    if not report.ok:
        raise ValidationError("audit", f"the audit chain does not verify (first bad event "
                              f"{report.first_bad_seq}: {report.problem}): no hedge file from it")
    decisions = [encode(d) for d in await program_decisions(store, name, str(period))]
    rfq_ids = {str(r["rfq_id"]) for d in decisions if not d.get("dry_run")
               for r in d.get("rfqs") or [] if isinstance(r, dict) and r.get("rfq_id")}
    trades = [t for t in await load_trades(store, requester_for(name)) if t.rfq_id in rfq_ids]
    record = None if realized is not None else (await load_inputs(store)).production.get((name, str(period)))
    records = {}
    for rfq_id in sorted(rfq_ids):
        events = await store.events(EventFilter(rfq_id=rfq_id))
        if events:
            records[rfq_id] = build_decision_record(events)
    return build_hedge_file(name=name, program=program, period=period, decisions=decisions,
                            trades=trades, records=records, snapshot=snapshot, today=today,
                            head_seq=report.head_seq, head_hash=report.head_hash,
                            realized=realized if record is None else record.quantity,
                            settlements=settlements,
                            realized_record=None if record is None else record.to_dict())
