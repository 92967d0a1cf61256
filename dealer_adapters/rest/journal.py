"""The order-intent journal of one REST desk: an append-only, fsynced JSONL file.

Why it exists: one award must be one order at the desk, across timeouts, retries and
restarts. Before an order leaves the process its intent (client order id, the desk's quote
id, side, price, quantity, and how to map the answer back to the engine's award) is a
line on disk; a second order for an execution id that has an intent line is never posted,
only asked for (``GET /v1/orders/{client_order_id}``). After a restart the journal is what
lets ``query_execution`` find the order and read its answer.

The desk's final answer is appended as an ``outcome`` line, so a refusal that left no
order at the desk (HTTP 4xx) is still known after a restart. One process at a time writes
a file; a torn last line (a crash mid-write) is dropped on load, any other bad line is an
error naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from dealer_adapters.jsonlog import JsonLog, dumps_line
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


class JournalError(Exception):
    """The journal cannot be read (a corrupt line, an unknown version)."""


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
class OrderOutcome:
    """The desk's final answer to an order: filled (price in the desk's orientation) or rejected."""

    execution_id: ExecutionId
    filled: bool
    recorded_at: datetime
    price: Decimal | None = None
    quantity: Decimal | None = None
    trade_id: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": JOURNAL_VERSION,
            "type": "outcome",
            "execution_id": self.execution_id,
            "status": "filled" if self.filled else "rejected",
            "price": None if self.price is None else decimal_str(self.price),
            "quantity": None if self.quantity is None else decimal_str(self.quantity),
            "trade_id": self.trade_id,
            "reason": self.reason,
            "recorded_at": format_ts(self.recorded_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OrderOutcome:
        status = data["status"]
        if status not in ("filled", "rejected"):
            raise ValueError(f"unknown outcome status {status!r}")
        price, quantity = data.get("price"), data.get("quantity")
        return cls(
            execution_id=ExecutionId(str(data["execution_id"])),
            filled=status == "filled",
            recorded_at=parse_ts(data["recorded_at"], "recorded_at"),
            price=None if price is None else parse_decimal(price, "price"),
            quantity=None if quantity is None else parse_decimal(quantity, "quantity"),
            trade_id=str(data.get("trade_id", "")),
            reason=str(data.get("reason", "")),
        )


class Journal:
    """One JSONL file (``dealer_adapters.jsonlog``). ``append`` blocks (write + fsync): call
    it through ``asyncio.to_thread``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = JsonLog(path)

    def load(self) -> tuple[dict[ExecutionId, OrderIntent], dict[ExecutionId, OrderOutcome]]:
        """Every intent and outcome, by execution id; a missing file is an empty journal (a
        torn last line, an order never sent, is dropped)."""
        intents: dict[ExecutionId, OrderIntent] = {}
        outcomes: dict[ExecutionId, OrderOutcome] = {}
        for number, line in self._log.lines():
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or record.get("v") != JOURNAL_VERSION:
                    raise ValueError("not a version 1 journal record")
                if record.get("type") == "intent":
                    intent = OrderIntent.from_dict(record)
                    intents[intent.execution_id] = intent
                elif record.get("type") == "outcome":
                    outcome = OrderOutcome.from_dict(record)
                    outcomes[outcome.execution_id] = outcome
                else:
                    raise ValueError(f"unknown record type {record.get('type')!r}")
            except (ValueError, KeyError, TypeError) as exc:
                raise JournalError(f"{self.path}:{number}: bad journal line: {exc}") from exc
        return intents, outcomes

    def append(self, record: OrderIntent | OrderOutcome) -> None:
        """Write one line and fsync it (and the directory when the file is new)."""
        self._log.append(dumps_line(record.to_dict()))
