"""The simulated desk's book of executions: an append-only JSONL file.

Why it exists: the engine's crash recovery asks a dealer what became of an
execution (``query_execution``), and an award re-sent after a restart must never
become a second trade. A real desk remembers its trades; the simulated one does so
here. Every answered award (confirmed *and* rejected, so the answer is stable) is
one JSON line, written and fsynced before the answer is sent: a trade exists exactly
when its line is on disk.

Several desks may share one file (each line names its dealer). One process at a time
writes a file; a torn last line (a crash mid-write) is dropped on load, any other bad
line is an error naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from dealer_adapters.jsonlog import JsonLog
from rfq_engine.domain import (
    Award,
    DealerId,
    ExecutionId,
    QuoteId,
    QuoteSide,
    RfqId,
    decimal_str,
    format_ts,
    new_id,
    parse_decimal,
    parse_ts,
)

__all__ = ["ExecutionOutcome", "ExecutionRecord", "Ledger", "LedgerError"]

LEDGER_VERSION = 1


class LedgerError(Exception):
    """The ledger file cannot be read (corrupt line, wrong version)."""


class ExecutionOutcome(StrEnum):
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """How the desk answered one award; the same answer is repeated for every duplicate."""

    dealer_id: DealerId
    execution_id: ExecutionId
    rfq_id: RfqId
    quote_id: QuoteId
    outcome: ExecutionOutcome
    side: QuoteSide
    price: Decimal
    quantity: Decimal
    booked_at: datetime
    dealer_trade_id: str = ""
    reason: str = ""

    @classmethod
    def for_award(cls, dealer_id: DealerId, award: Award, reason: str | None,
                  now: datetime) -> ExecutionRecord:
        """The desk's answer to ``award``: confirmed (with a new trade id) when ``reason`` is
        None, else rejected with that reason."""
        confirmed = reason is None
        return cls(
            dealer_id=dealer_id,
            execution_id=award.execution_id,
            rfq_id=award.rfq_id,
            quote_id=award.quote_id,
            outcome=ExecutionOutcome.CONFIRMED if confirmed else ExecutionOutcome.REJECTED,
            side=award.side,
            price=award.price,
            quantity=award.quantity,
            booked_at=now,
            dealer_trade_id=f"{dealer_id}-{new_id().replace('-', '')[:16]}" if confirmed else "",
            reason=reason or "",
        )

    @property
    def confirmed(self) -> bool:
        return self.outcome is ExecutionOutcome.CONFIRMED

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "v": LEDGER_VERSION,
            "dealer_id": self.dealer_id,
            "execution_id": self.execution_id,
            "rfq_id": self.rfq_id,
            "quote_id": self.quote_id,
            "outcome": self.outcome.value,
            "side": self.side.value,
            "price": decimal_str(self.price),
            "quantity": decimal_str(self.quantity),
            "booked_at": format_ts(self.booked_at),
            "dealer_trade_id": self.dealer_trade_id,
            "reason": self.reason,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> ExecutionRecord:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("v") != LEDGER_VERSION:
            raise ValueError(f"unsupported ledger version {data.get('v')!r}")
        return cls(
            dealer_id=DealerId(str(data["dealer_id"])),
            execution_id=ExecutionId(str(data["execution_id"])),
            rfq_id=RfqId(str(data["rfq_id"])),
            quote_id=QuoteId(str(data["quote_id"])),
            outcome=ExecutionOutcome(data["outcome"]),
            side=QuoteSide(data["side"]),
            price=parse_decimal(data["price"], "price"),
            quantity=parse_decimal(data["quantity"], "quantity"),
            booked_at=parse_ts(data["booked_at"], "booked_at"),
            dealer_trade_id=str(data.get("dealer_trade_id", "")),
            reason=str(data.get("reason", "")),
        )


class Ledger:
    """One JSONL file (``dealer_adapters.jsonlog``). ``append`` blocks (write + fsync): call
    it via ``asyncio.to_thread``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = JsonLog(path)

    def load(self) -> list[ExecutionRecord]:
        """All records in file order; a missing file is an empty ledger (a torn last line,
        an answer never sent, is dropped)."""
        records: list[ExecutionRecord] = []
        for number, line in self._log.lines():
            try:
                records.append(ExecutionRecord.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise LedgerError(f"{self.path}:{number}: bad ledger line: {exc}") from exc
        return records

    def append(self, record: ExecutionRecord) -> None:
        """Write one line and fsync it; returns once the record is durable."""
        self._log.append(record.to_json())
