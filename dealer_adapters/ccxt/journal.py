"""The execution journal: an append-only, fsynced JSONL file of intents and outcomes.

Why it exists: one award must become at most one order at the venue, also across a
timeout, a reconnect or a restart. Before any order-placing call the adapter appends an
*intent* line (execution id, client order id, market, side, amount, limit price) and
waits for the fsync; when it knows how the call ended it appends an *outcome* line. On
start the journal is read back:

- an execution with an outcome answers every duplicate award and ``query_execution``
  with that same outcome;
- an execution with an intent but no outcome is *unresolved*: the order may or may not
  have reached the venue, so it is looked up by its client order id and never sent again;
- a *fence* line (no intent) records that ``query_execution`` answered "not found" for an
  execution id: an award with that id is refused, never placed, so the answer stays true.

Several dealers may share one file (each line names its dealer). One process writes a
file at a time. A torn last line (a crash mid-write: its call was never made, or its
outcome is re-learned by reconciliation) is dropped and cut from the file; any other bad
line is an error naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dealer_adapters.jsonlog import JsonLog, dumps_line

__all__ = ["JOURNAL_VERSION", "Journal", "JournalEntry", "JournalError"]

JOURNAL_VERSION = 1


class JournalError(Exception):
    """The journal file cannot be read (corrupt line, wrong version)."""


@dataclass(slots=True)
class JournalEntry:
    """What the journal knows about one execution id of one dealer."""

    intent: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unresolved(self) -> bool:
        return self.intent is not None and self.outcome is None

    @property
    def fenced(self) -> bool:
        """``query_execution`` answered "not found" for this id: it must never be placed."""
        return any(note.get("kind") == "fence" for note in self.notes)


class Journal:
    """One JSONL file (``dealer_adapters.jsonlog``). ``append`` blocks (write + fsync): call
    it via ``asyncio.to_thread``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._log = JsonLog(path)

    def load(self) -> dict[tuple[str, str], JournalEntry]:
        """Entries keyed by ``(dealer_id, execution_id)``; a missing file is an empty journal."""
        entries: dict[tuple[str, str], JournalEntry] = {}
        for number, line in self._log.lines():
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or record.get("v") != JOURNAL_VERSION:
                    raise ValueError(f"not a version {JOURNAL_VERSION} record")
                key = (str(record["dealer_id"]), str(record["execution_id"]))
                kind = record["kind"]
            except (ValueError, KeyError, TypeError) as exc:
                raise JournalError(f"{self.path}:{number}: bad journal line: {exc}") from exc
            entry = entries.setdefault(key, JournalEntry())
            if kind == "intent":
                entry.intent = record
            elif kind == "outcome":
                entry.outcome = record
            else:
                entry.notes.append(record)
        return entries

    def append(self, record: dict[str, Any]) -> None:
        """Write one line and fsync it; returns once the record is durable."""
        self._log.append(dumps_line({"v": JOURNAL_VERSION, **record}))
