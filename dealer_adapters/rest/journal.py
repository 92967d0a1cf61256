"""The order journal of one REST desk: its records in the shared execution journal.

Why it exists: one award must be one order at the desk, across timeouts, retries and
restarts. Before an order leaves the process its intent (client order id, the desk's quote
id, side, price, quantity, and how to map the answer back to the engine's award) is a
line on disk; a second order for an execution id that has an intent line is never posted,
only asked for (``GET /v1/orders/{client_order_id}``). After a restart the journal is what
lets ``query_execution`` find the order and read its answer.

The desk's final answer is appended as an ``outcome`` line, so a refusal that left no
order at the desk (HTTP 4xx) is still known after a restart. The intent/outcome tracking,
the file and its error handling are ``dealer_adapters.journal``'s; this module is the
line format (``{"v": 1, "type": "intent" | "outcome", ...}``, one file per desk, so the
lines name no dealer). Fences are not lines here: they live as long as the adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from dealer_adapters.journal import DeskJournal, DeskOutcome, JournalError, Line, typed_line
from rfq_engine.domain import (
    ExecutionId,
    QuoteId,
    RfqId,
    Side,
    decimal_str,
    format_ts,
    parse_decimal,
    parse_ts,
)

__all__ = ["JOURNAL_VERSION", "Journal", "JournalError", "OrderIntent", "OrderOutcome"]

JOURNAL_VERSION = 1


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order about to be sent (written before the network call)."""

    execution_id: ExecutionId
    client_order_id: str
    rfq_id: RfqId
    quote_id: QuoteId
    """The engine's quote id (what a confirm must name)."""
    desk_quote_id: str
    side: Side
    """The client's side in the order."""
    price: Decimal
    """The order's price, in the desk's orientation."""
    quantity: Decimal
    sign: int
    """Engine price = sign * desk price."""
    confirm_by: datetime
    recorded_at: datetime
    quantity_unit: str = ""
    """The unit ``quantity`` is in (the award's, i.e. the RFQ's ``quantity_unit``); empty only
    on lines written before the field existed."""

    def order_body(self) -> dict[str, Any]:
        """The ``POST /v1/orders`` body (``docs/dealers-rest.md``)."""
        return {
            "client_order_id": self.client_order_id,
            "quote_id": self.desk_quote_id,
            "side": self.side.value,
            "price": decimal_str(self.price),
            "quantity": decimal_str(self.quantity),
            "quantity_unit": self.quantity_unit,
            "time_in_force": "fok",
            "expires_at": format_ts(self.confirm_by),
        }

    def to_engine(self, desk_price: Decimal) -> Decimal:
        return desk_price if self.sign > 0 else -desk_price

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": JOURNAL_VERSION,
            "type": "intent",
            "execution_id": self.execution_id,
            "client_order_id": self.client_order_id,
            "rfq_id": self.rfq_id,
            "quote_id": self.quote_id,
            "desk_quote_id": self.desk_quote_id,
            "side": self.side.value,
            "price": decimal_str(self.price),
            "quantity": decimal_str(self.quantity),
            "sign": self.sign,
            "confirm_by": format_ts(self.confirm_by),
            "recorded_at": format_ts(self.recorded_at),
            "quantity_unit": self.quantity_unit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderIntent:
        sign = data["sign"]
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign!r}")
        return cls(
            execution_id=ExecutionId(str(data["execution_id"])),
            client_order_id=str(data["client_order_id"]),
            rfq_id=RfqId(str(data["rfq_id"])),
            quote_id=QuoteId(str(data["quote_id"])),
            desk_quote_id=str(data["desk_quote_id"]),
            side=Side(data["side"]),
            price=parse_decimal(data["price"], "price"),
            quantity=parse_decimal(data["quantity"], "quantity"),
            sign=int(sign),
            confirm_by=parse_ts(data["confirm_by"], "confirm_by"),
            recorded_at=parse_ts(data["recorded_at"], "recorded_at"),
            quantity_unit=str(data.get("quantity_unit", "")),
        )


@dataclass(frozen=True, slots=True)
class OrderOutcome(DeskOutcome):
    """The desk's final answer to an order: filled (price in the desk's orientation) or rejected."""

    trade_id: str = ""
    TRADE_FIELD: ClassVar[str] = "trade_id"


class Journal(DeskJournal[OrderIntent, OrderOutcome]):
    """The desk's journal file; ``dealer_id`` names the desk in what it knows (its lines do
    not). ``append`` blocks (write + fsync): the adapter goes through ``record_intent`` /
    ``record_outcome``, which run it in a worker thread."""

    DESK = "a REST desk"

    def decode(self, data: dict[str, Any]) -> Line[OrderIntent, OrderOutcome]:
        return typed_line(self.dealer_id, data, OrderIntent.from_dict, OrderOutcome.from_dict)

    def load(self) -> tuple[dict[ExecutionId, OrderIntent], dict[ExecutionId, OrderOutcome]]:
        """Every intent and outcome in the file, by execution id (a missing file is an empty
        journal; a torn last line, an order never sent, is dropped)."""
        lines = self.read()
        return ({line.execution_id: line.intent for line in lines if line.intent is not None},
                {line.execution_id: line.outcome for line in lines if line.outcome is not None})
