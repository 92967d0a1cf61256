"""The simulated desk's book of executions: its records in the shared execution journal.

Why it exists: the engine's crash recovery asks a dealer what became of an
execution (``query_execution``), and an award re-sent after a restart must never
become a second trade. A real desk remembers its trades; the simulated one does so
here. Every answered award (confirmed *and* rejected, so the answer is stable) is
one JSON line, written and fsynced before the answer is sent: a trade exists exactly
when its line is on disk (``ExecutionJournal.record_outcome(..., booking=True)``).

This is the desk's side of the wire, so it has no intents: a booking *is* the outcome.
The tracking (a booking in progress, the fences), the file and its errors are
``dealer_adapters.journal``'s; this module is the line format (one ``ExecutionRecord``
a line). Several desks may share one file (each line names its dealer). Fences are not
lines here: an in-process desk restarts with the engine, so they live as long as the
adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Never

from dealer_adapters.journal import ExecutionJournal, Fence, JournalError, Line, Phase
from dealer_adapters.jsonlog import dumps_line
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


class LedgerError(JournalError):
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
            dealer_trade_id=f"{dealer_id}-{new_id().replace('-', '')[-16:]}" if confirmed else "",
            reason=reason or "",
        )

    @property
    def confirmed(self) -> bool:
        return self.outcome is ExecutionOutcome.CONFIRMED

    def to_dict(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionRecord:
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

    def to_json(self) -> str:
        return dumps_line(self.to_dict())

    @classmethod
    def from_json(cls, line: str) -> ExecutionRecord:
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        if data.get("v") != LEDGER_VERSION:
            raise ValueError(f"unsupported ledger version {data.get('v')!r}")
        return cls.from_dict(data)


MEMORY_BOOKS_KEPT = 20_000
"""Executions a desk without a ledger file remembers: its books die with the process
anyway, and the engine only ever asks about recent ones (an award whose confirm was lost
is looked up within its confirm timeout and retries); the oldest answered ones beyond
this are forgotten, so a long run at a benchmark's rate does not grow without bound."""


class Ledger(ExecutionJournal[Never, ExecutionRecord]):
    """One JSONL file (``path``; None: the books live in memory only, the newest ``keep``
    answered executions). ``append`` blocks (write + fsync); the adapter books through
    ``record_outcome(..., booking=True)``, which runs it in a worker thread."""

    VERSION = LEDGER_VERSION
    NOUN = "ledger"
    ERROR = LedgerError
    DURABLE_FENCES = False

    def __init__(self, path: Path | None, *, keep: int | None = None) -> None:
        super().__init__(path)
        self.keep = keep if keep is not None else (None if path is not None else MEMORY_BOOKS_KEPT)

    async def record_outcome(self, dealer_id: str, execution_id: str, outcome: ExecutionRecord, *,
                             booking: bool = False) -> ExecutionRecord:
        standing = await super().record_outcome(dealer_id, execution_id, outcome, booking=booking)
        if self.keep is not None and len(self._entries) > self.keep + self.keep // 20:
            self._trim(self.keep)
        return standing

    def _trim(self, keep: int) -> None:
        """Forget the oldest answered executions until ``keep`` remain (in booking order;
        one still being booked or without an answer is kept)."""
        excess = len(self._entries) - keep
        for key, entry in list(self._entries.items()):
            if excess <= 0:
                break
            if entry.settling is None and entry.phase in (Phase.CONFIRMED, Phase.REJECTED):
                del self._entries[key]
                if entry.outcome is not None and entry.outcome.dealer_trade_id:
                    self._trades.pop((entry.dealer_id, entry.outcome.dealer_trade_id), None)
                excess -= 1

    def decode(self, data: dict[str, Any]) -> Line[Never, ExecutionRecord]:
        record = ExecutionRecord.from_dict(data)
        return Line(record.dealer_id, record.execution_id, outcome=record)

    def encode(self, record: ExecutionRecord | Fence) -> dict[str, Any]:
        if isinstance(record, Fence):
            raise TypeError("a simulated desk's ledger keeps no fence lines")
        return record.to_dict()

    def confirmed(self, outcome: ExecutionRecord) -> bool:
        return outcome.confirmed

    def trade_id(self, outcome: ExecutionRecord) -> str:
        return outcome.dealer_trade_id

    def load(self) -> list[ExecutionRecord]:
        """All records in file order; a missing file is an empty ledger (a torn last line,
        an answer never sent, is dropped)."""
        return [line.outcome for line in self.read() if line.outcome is not None]
