"""Reading a hedge file's evidence from the audit store (read-only), then building it.

The period's ``program.decided`` events, the fills of the RFQs they sent, each RFQ's decision
record from its own events, and the chain's head, from ``store.verify()``: a file is only
built from a chain that verifies (``ValidationError`` otherwise, naming the first bad event).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.events import encode
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.hedgefile import build_hedge_file
from rfq_engine.hedging.planner import requester_for
from rfq_engine.hedging.program import ProgramConfig
from rfq_engine.hedging.records import load_trades, program_decisions
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.store.base import AuditStore, EventFilter

__all__ = ["load_hedge_file"]


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
    records = {}
    for rfq_id in sorted(rfq_ids):
        events = await store.events(EventFilter(rfq_id=rfq_id))
        if events:
            records[rfq_id] = build_decision_record(events)
    return build_hedge_file(name=name, program=program, period=period, decisions=decisions,
                            trades=trades, records=records, snapshot=snapshot, today=today,
                            head_seq=report.head_seq, head_hash=report.head_hash, realized=realized,
                            settlements=settlements)
