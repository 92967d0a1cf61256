"""The award journal of one FIX desk: its lines in the shared execution journal.

Before an award's QuoteResponse or NewOrderSingle leaves the process, its intent (the
``ClOrdID``/``QuoteRespID``, the desk's QuoteID, side, symbol, price in the desk's
orientation, quantity, and the sign back to the engine's price) is a fsynced line; an
execution id with an intent is never sent again, only asked for (OrderStatusRequest).
The desk's final answer (an ExecutionReport that filled or rejected it, or a refusal that
proves nothing left) is an ``outcome`` line, deduplicated by the desk's ``OrderID(37)``:
a duplicate ExecutionReport records nothing and makes no second fill.

Lines: ``{"v": 1, "type": "intent" | "outcome", ...}``, one file per desk (``<dealer>.orders.jsonl``).
Fences (an id answered "not found") live as long as the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from dealer_adapters.journal import DeskJournal, DeskOutcome, Line, typed_line
from rfq_engine.domain import (
    ExecutionId,
    QuoteId,
    RfqId,
    decimal_str,
    format_ts,
    parse_decimal,
    parse_ts,
)

__all__ = ["AwardIntent", "AwardOutcome", "FixJournal"]


@dataclass(frozen=True, slots=True)
class AwardIntent:
    execution_id: ExecutionId
    client_id: str
    """``ClOrdID(11)`` and ``QuoteRespID(693)``: the award's idempotency key at the desk."""
    rfq_id: RfqId
    quote_id: QuoteId
    desk_quote_id: str
    quote_req_id: str
    style: str
    """``quote_response`` or ``new_order_single``."""
    side: str
    """``Side(54)`` of the award: 1 buy, 2 sell (the requester's, on the symbol or the package)."""
    symbol: str
    price: Decimal
    """In the desk's orientation (engine price = sign * price)."""
    quantity: Decimal
    sign: int
    confirm_by: datetime
    recorded_at: datetime
    quantity_unit: str = ""

    def to_engine(self, desk_price: Decimal) -> Decimal:
        return desk_price if self.sign > 0 else -desk_price

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": 1, "type": "intent", "execution_id": self.execution_id, "client_id": self.client_id,
            "rfq_id": self.rfq_id, "quote_id": self.quote_id, "desk_quote_id": self.desk_quote_id,
            "quote_req_id": self.quote_req_id, "style": self.style, "side": self.side,
            "symbol": self.symbol, "price": decimal_str(self.price), "quantity": decimal_str(self.quantity),
            "sign": self.sign, "confirm_by": format_ts(self.confirm_by),
            "recorded_at": format_ts(self.recorded_at), "quantity_unit": self.quantity_unit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AwardIntent:
        sign = data["sign"]
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign!r}")
        if data["style"] not in ("quote_response", "new_order_single"):
            raise ValueError(f"unknown award style {data['style']!r}")
        if data["side"] not in ("1", "2"):
            raise ValueError(f"unknown side {data['side']!r}")
        return cls(
            execution_id=ExecutionId(str(data["execution_id"])), client_id=str(data["client_id"]),
            rfq_id=RfqId(str(data["rfq_id"])), quote_id=QuoteId(str(data["quote_id"])),
            desk_quote_id=str(data["desk_quote_id"]), quote_req_id=str(data["quote_req_id"]),
            style=str(data["style"]), side=str(data["side"]), symbol=str(data["symbol"]),
            price=parse_decimal(data["price"], "price"), quantity=parse_decimal(data["quantity"], "quantity"),
            sign=int(sign), confirm_by=parse_ts(data["confirm_by"], "confirm_by"),
            recorded_at=parse_ts(data["recorded_at"], "recorded_at"),
            quantity_unit=str(data.get("quantity_unit", "")),
        )


@dataclass(frozen=True, slots=True)
class AwardOutcome(DeskOutcome):
    """The desk's final answer: filled (price in the desk's orientation) or rejected."""

    order_id: str = ""
    """``OrderID(37)``: the desk's trade id (the same on the fill and on every status answer)."""
    TRADE_FIELD: ClassVar[str] = "order_id"


class FixJournal(DeskJournal[AwardIntent, AwardOutcome]):
    DESK = "a FIX desk"

    def decode(self, data: dict[str, Any]) -> Line[AwardIntent, AwardOutcome]:
        return typed_line(self.dealer_id, data, AwardIntent.from_dict, AwardOutcome.from_dict)
