"""A simulated desk without a ledger file keeps the newest answered executions in memory,
not every one it ever booked: the same answer for a repeated recent award, a lookup of a
recent execution and of its trade id; the oldest beyond the bound are forgotten. With a
file, every execution is kept (the file is the desk's book)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from dealer_adapters.simulated.ledger import MEMORY_BOOKS_KEPT, ExecutionOutcome, ExecutionRecord, Ledger
from rfq_engine.domain import DealerId, ExecutionId, QuoteId, QuoteSide, RfqId

NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)
DESK = "desk-a"


def record(n: int, outcome: ExecutionOutcome = ExecutionOutcome.CONFIRMED) -> ExecutionRecord:
    return ExecutionRecord(DealerId(DESK), ExecutionId(f"e-{n}"), RfqId(f"r-{n}"), QuoteId(f"q-{n}"),
                           outcome, QuoteSide.BID, Decimal("39990"), Decimal(1), NOW,
                           f"T-{n}" if outcome is ExecutionOutcome.CONFIRMED else "")


async def book(ledger: Ledger, n: int,
               outcome: ExecutionOutcome = ExecutionOutcome.CONFIRMED) -> ExecutionRecord:
    ledger.begin(DESK, f"e-{n}")
    return await ledger.record_outcome(DESK, f"e-{n}", record(n, outcome), booking=True)


async def test_the_books_in_memory_keep_the_newest_answered_executions() -> None:
    ledger = Ledger(None, keep=100)
    for n in range(1000):
        await book(ledger, n, ExecutionOutcome.REJECTED if n % 7 == 0 else ExecutionOutcome.CONFIRMED)
    kept = [n for n in range(1000) if ledger.get(DESK, f"e-{n}") is not None]
    assert 100 <= len(kept) <= 105 and kept == list(range(1000 - len(kept), 1000))
    assert ledger.by_trade_id(DESK, "T-999") is not None and ledger.by_trade_id(DESK, "T-1") is None
    assert len(ledger._trades) <= len(kept)
    again = await ledger.record_outcome(DESK, "e-999", record(999, ExecutionOutcome.REJECTED), booking=True)
    # the first answer stands
    assert again.outcome is ExecutionOutcome.CONFIRMED and again.dealer_trade_id == "T-999"


async def test_an_execution_being_booked_is_never_forgotten() -> None:
    ledger = Ledger(None, keep=10)
    ledger.begin(DESK, "e-open")  # an award in progress: begun, not yet answered
    for n in range(100):
        await book(ledger, n)
    assert ledger.get(DESK, "e-open") is not None


async def test_a_ledger_file_keeps_every_execution(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "books.jsonl")
    assert ledger.keep is None and Ledger(None).keep == MEMORY_BOOKS_KEPT
    for n in range(300):
        await book(ledger, n)
    assert all(ledger.get(DESK, f"e-{n}") is not None for n in range(300))
