"""What the audit log says about one RFQ, folded from its typed events: ``RfqBook.apply``.

The live run and recovery share it. The live run applies each event it writes (its state,
awards and fills are the book's), and recovery rebuilds a book by applying the stored
events in order. So a restarted RFQ is, event for event, the RFQ that was running
(nautilus_trader's order, driven by its events, is the model). The book is pure: no I/O,
no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    QuoteId,
    QuoteSide,
    RfqId,
    RfqSpec,
    RfqState,
)
from rfq_engine.domain.events import (
    AnyEvent,
    ApprovalGranted,
    ApprovalRequested,
    AwardDecided,
    CancelRequested,
    ExecutionConfirmed,
    ExecutionRejected,
    ExecutionResolved,
    ExecutionUnknown,
    ExecutionUnresolved,
    FillRecorded,
    RfqSent,
    RfqStateChanged,
    RfqSubmitted,
    UnknownEvent,
)
from rfq_engine.engine.awards import AwardOutcome

__all__ = ["RfqBook"]

ZERO = Decimal(0)


@dataclass
class RfqBook:
    rfq_id: RfqId
    spec: RfqSpec
    notional: Decimal | None
    state: RfqState = RfqState.CREATED
    reason: str = ""
    sent_to: tuple[DealerId, ...] = ()
    approval_expires: datetime | None = None
    approved_by: str | None = None
    cancel_reason: str | None = None
    awards: dict[ExecutionId, tuple[Award, int]] = field(default_factory=dict)
    """Every award decided, with its rank."""
    confirmed: dict[ExecutionId, AwardOutcome] = field(default_factory=dict)
    """Executions the dealer confirmed (or a person resolved as executed)."""
    rejected: set[ExecutionId] = field(default_factory=set)
    unknown: set[ExecutionId] = field(default_factory=set)
    unresolved: set[ExecutionId] = field(default_factory=set)
    filled: dict[ExecutionId, AwardOutcome] = field(default_factory=dict)
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    filled_value: Decimal = ZERO
    """sum(price x quantity), for the average price."""
    winners: set[DealerId] = field(default_factory=set)

    @classmethod
    def submitted(cls, rfq_id: str, event: RfqSubmitted) -> RfqBook:
        return cls(RfqId(rfq_id), RfqSpec.from_dict(event.spec), event.notional)

    @classmethod
    def from_events(cls, rfq_id: str, events: Iterable[AnyEvent | UnknownEvent]) -> RfqBook:
        """Replay: the book of one RFQ from its events, in order."""
        book: RfqBook | None = None
        for event in events:
            if isinstance(event, RfqSubmitted):
                book = cls.submitted(rfq_id, event)
            elif book is not None:
                book.apply(event)
        if book is None:
            raise ValueError(f"rfq {rfq_id}: no rfq.submitted event")
        return book

    @property
    def unsettled(self) -> list[ExecutionId]:
        """Awards with neither a fill nor a reject (in last look, unknown or unresolved)."""
        return [eid for eid in self.awards if eid not in self.rejected and eid not in self.filled]

    def apply(self, event: AnyEvent | UnknownEvent) -> None:
        """Fold one event in (events that change nothing here are ignored)."""
        match event:
            case RfqStateChanged(to=to, reason=reason):
                self.state, self.reason = RfqState(to), reason
            case ApprovalRequested(expires_at=expires):
                self.approval_expires = expires
            case ApprovalGranted(approver=approver):
                self.approved_by = approver
            case CancelRequested(reason=reason):
                self.cancel_reason = self.cancel_reason or reason
            case RfqSent(sent=sent, failed=failed):
                self.sent_to = tuple(DealerId(d) for d in sent) + tuple(
                    DealerId(d) for d in failed)
            case AwardDecided():
                award = Award(self.rfq_id, QuoteId(event.quote_id), DealerId(event.dealer_id),
                              QuoteSide(event.side), event.price, event.quantity,
                              ExecutionId(event.execution_id), event.confirm_by,
                              self.spec.quantity_unit)
                self.awards[award.execution_id] = (award, event.rank)
            case ExecutionConfirmed():
                self.confirmed[ExecutionId(event.execution_id)] = AwardOutcome(
                    True, event.quantity, event.price, "confirmed", event.dealer_trade_id)
            case ExecutionRejected(execution_id=eid):
                self.rejected.add(ExecutionId(eid))
            case ExecutionUnknown(execution_id=eid):
                self.unknown.add(ExecutionId(eid))
            case ExecutionUnresolved(execution_id=eid):
                self.unresolved.add(ExecutionId(eid))
            case ExecutionResolved(execution_id=eid) if event.executed:
                assert event.quantity is not None and event.price is not None
                self.confirmed[ExecutionId(eid)] = AwardOutcome(
                    True, event.quantity, event.price,
                    f"resolved by {event.resolved_by}: executed", event.dealer_trade_id)
            case ExecutionResolved(execution_id=eid):
                self.rejected.add(ExecutionId(eid))
            case FillRecorded():
                eid = ExecutionId(event.execution_id)
                if eid in self.filled:
                    return  # a fill is keyed by its execution: never counted twice
                self.filled[eid] = AwardOutcome(True, event.quantity, event.price, "confirmed",
                                                event.dealer_trade_id)
                self.filled_quantity += event.quantity
                self.filled_notional += event.notional
                self.filled_value += event.quantity * event.price
                self.winners.add(DealerId(event.dealer_id))
            case _:
                pass
