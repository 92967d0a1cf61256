"""The ccxt dealers' execution journal: their records in the shared execution journal.

Why it exists: one award must become at most one order at the venue, also across a
timeout, a reconnect or a restart. Before any order-placing call the adapter records an
*intent* line (execution id, client order id, market, side, amount, limit price) and
waits for the fsync; when it knows how the call ended it records an *outcome* line. On
start the journal is read back:

- an execution with an outcome answers every duplicate award and ``query_execution``
  with that same outcome;
- an execution with an intent but no outcome is *unresolved*: the order may or may not
  have reached the venue, so it is looked up by its client order id and never sent again;
- a *fence* line (no intent) records that ``query_execution`` answered "not found" for an
  execution id: an award with that id is refused, never placed, so the answer stays true.

The tracking, the file and its errors are ``dealer_adapters.journal``'s; this module is
the line format: ``{"v": 1, "kind": "intent" | "outcome" | "fence", "dealer_id",
"execution_id", ...}``, the intent and outcome records kept whole (routes add their own
fields), lines of another kind kept as notes. Several dealers may share one file.
"""

from __future__ import annotations

from typing import Any

from dealer_adapters.journal import Execution, ExecutionJournal, Fence, JournalError, Line
from rfq_engine.domain import ExecutionId, format_ts

__all__ = ["JOURNAL_VERSION", "Journal", "JournalEntry", "JournalError"]

JOURNAL_VERSION = 1

Record = dict[str, Any]
JournalEntry = Execution[Record, Record]
"""What the journal knows about one execution id of one dealer (``intent`` and ``outcome``
are the journaled records)."""


class Journal(ExecutionJournal[Record, Record]):
    """One JSONL file, possibly shared by several dealers (each line names its dealer)."""

    VERSION = JOURNAL_VERSION

    def decode(self, data: dict[str, Any]) -> Line[Record, Record]:
        dealer_id, execution_id = str(data["dealer_id"]), ExecutionId(str(data["execution_id"]))
        kind = data["kind"]
        if kind == "intent":
            return Line(dealer_id, execution_id, intent=data)
        if kind == "outcome":
            return Line(dealer_id, execution_id, outcome=data)
        if kind == "fence":
            return Line(dealer_id, execution_id, fence=True)
        return Line(dealer_id, execution_id, note=data)

    def encode(self, record: Record | Fence) -> dict[str, Any]:
        if isinstance(record, Fence):
            return {"kind": "fence", "dealer_id": record.dealer_id, "execution_id": record.execution_id,
                    "reason": record.reason, "ts": format_ts(record.at)}
        return record

    def confirmed(self, outcome: Record) -> bool:
        return bool(outcome["confirmed"])

    def trade_id(self, outcome: Record) -> str:
        return str(outcome.get("dealer_trade_id", ""))

    def load(self) -> dict[tuple[str, ExecutionId], JournalEntry]:
        """Entries keyed by ``(dealer_id, execution_id)``; a missing file is an empty journal."""
        return dict(self.restore())
