"""Reading what hedging needs from the audit store: trades (fills with their specs and
reference leg prices), a program's open RFQs, its recorded decisions and the operator inputs
(``inputs``: collateral posted, production realized). Read-only."""

from __future__ import annotations

from decimal import Decimal

from rfq_engine.domain.events import EventType, ProgramDecided, RfqSubmitted
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.domain.states import RfqState
from rfq_engine.domain.values import parse_decimal
from rfq_engine.hedging.inputs import OperatorInputs, latest_inputs
from rfq_engine.hedging.positions import TradeRecord, fill_terms
from rfq_engine.readmodels.events import typed_events
from rfq_engine.store.base import AuditStore, EventFilter, FillRow, RfqRow

__all__ = ["load_inputs", "load_trades", "open_rfqs", "program_decisions", "trade_record"]


async def load_inputs(store: AuditStore | None) -> OperatorInputs:
    """The latest operator inputs in ``store`` (none without a store)."""
    if store is None:
        return OperatorInputs()
    flt = EventFilter(types=[EventType.COLLATERAL_POSTED.value, EventType.PRODUCTION_REALIZED.value])
    stored = typed_events(await store.events(flt))
    return latest_inputs((event.seq, event.ts, typed) for event, typed in stored)


def _reference_legs(event: RfqSubmitted) -> tuple[Decimal, ...] | None:
    reference = event.reference
    if not isinstance(reference, dict) or not isinstance(reference.get("legs"), list):
        return None
    return tuple(parse_decimal(v, "reference.legs") for v in reference["legs"])


async def load_trades(store: AuditStore, requester: str | None = None) -> list[TradeRecord]:
    """Every fill (of ``requester``'s RFQs only, when given), with its RFQ's spec."""
    flt = EventFilter(types=[EventType.RFQ_SUBMITTED.value], actor=requester)
    submitted = {stored.rfq_id: event for stored, event in typed_events(await store.events(flt))
                 if stored.rfq_id and isinstance(event, RfqSubmitted)}
    trades = []
    for fill in await store.fills():
        event = submitted.get(fill.rfq_id)
        if event is None:
            continue  # another requester's RFQ
        trades.append(trade_record(fill, event))
    return trades


def trade_record(fill: FillRow, submitted: RfqSubmitted, spec: RfqSpec | None = None) -> TradeRecord:
    """The trade of ``fill``, with the spec and reference legs of its RFQ's ``submitted``
    (``spec``: that spec already parsed)."""
    return TradeRecord(
        fill_id=fill.fill_id, rfq_id=fill.rfq_id,
        spec=RfqSpec.from_dict(submitted.spec) if spec is None else spec,
        price=fill.price, quantity=fill.quantity, filled_at=fill.filled_at,
        dealer_id=fill.dealer_id, reference_legs=_reference_legs(submitted),
        contract=fill_terms(fill.dealer_trade_id))


async def open_rfqs(store: AuditStore, requester: str) -> list[RfqRow]:
    """``requester``'s RFQs that are not terminal yet."""
    states = [s.value for s in RfqState if not s.is_terminal]
    return [row for row in await store.rfqs(states=states) if row.requester == requester]


async def program_decisions(store: AuditStore, name: str, period: str | None = None
                            ) -> list[ProgramDecided]:
    """The program's ``program.decided`` events (of one period, when given), oldest first."""
    flt = EventFilter(types=[EventType.PROGRAM_DECIDED.value], actor=f"program:{name}")
    return [event for _, event in typed_events(await store.events(flt))
            if isinstance(event, ProgramDecided) and (period is None or event.period == period)]
