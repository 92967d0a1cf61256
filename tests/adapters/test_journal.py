"""The shared execution journal (``dealer_adapters.journal``): intent before the call, the
outcome after it deduplicated by trade id, fences, and what a restart reads back.

Exercised through the three line formats that use it (the REST desks' order journal, the
ccxt dealers' journal, the simulated desks' ledger), so each kind's file format is pinned too.
"""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.ccxt.journal import Journal as CcxtJournal
from dealer_adapters.journal import Execution, JournalError, Phase
from dealer_adapters.rest.journal import Journal as RestJournal
from dealer_adapters.rest.journal import OrderIntent, OrderOutcome
from dealer_adapters.simulated.ledger import ExecutionOutcome, ExecutionRecord, Ledger, LedgerError
from rfq_engine.domain import DealerId, ExecutionId, QuoteId, QuoteSide, RfqId, Side

NOW = datetime(2026, 11, 21, 10, tzinfo=UTC)
DESK = "desk-a"
E1, E2 = ExecutionId("e-1"), ExecutionId("e-2")


def intent(eid: ExecutionId = E1) -> OrderIntent:
    return OrderIntent(eid, f"rfq-{eid}", RfqId("r-1"), QuoteId("Q-1"), "Q-1", Side.SELL, Decimal("39990"),
                       Decimal(10), 1, NOW + timedelta(seconds=2), NOW, quantity_unit="BTC")


def fill(eid: ExecutionId = E1, trade_id: str = "T-1") -> OrderOutcome:
    return OrderOutcome(eid, True, NOW, price=Decimal("39990"), quantity=Decimal(10), trade_id=trade_id)


def refusal(eid: ExecutionId = E1) -> OrderOutcome:
    return OrderOutcome(eid, False, NOW, reason="last look")


def phase(entry: Execution[Any, Any] | None) -> Phase:
    """The entry's phase now (a call, so each assert reads it afresh)."""
    assert entry is not None
    return entry.phase


def hold_writes(monkeypatch: pytest.MonkeyPatch, journal_cls: type[Any]) -> tuple[threading.Event, ...]:
    """Make ``journal_cls.append`` wait: ``(writing, may_finish)``, set when a write starts,
    and to let it finish."""
    writing, may_finish = threading.Event(), threading.Event()
    original = journal_cls.append

    def slow(self: Any, record: Any) -> None:
        writing.set()
        assert may_finish.wait(10)
        original(self, record)

    monkeypatch.setattr(journal_cls, "append", slow)
    return writing, may_finish


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- intent before the call ---------------------------------------------------------------


async def test_the_intent_is_on_disk_before_record_intent_returns(tmp_path: Path) -> None:
    path = tmp_path / "desk.orders.jsonl"
    journal = RestJournal(path, DESK)
    assert journal.begin(DESK, E1).phase is Phase.PENDING  # the attempt starts: nothing durable yet
    assert lines(path) == []
    entry = await journal.record_intent(DESK, E1, intent())
    # what the network call may rely on: the line is durable, the phase says so
    assert [(r["type"], r["execution_id"]) for r in lines(path)] == [("intent", E1)]
    assert phase(entry) is Phase.INTENDED and entry.unresolved
    journal.mark_sent(DESK, E1)
    assert phase(entry) is Phase.SENT
    journal.mark_unknown(DESK, E1, "timed out")
    assert (entry.phase, entry.reason) == (Phase.UNKNOWN, "timed out")
    await journal.record_outcome(DESK, E1, fill())
    assert phase(entry) is Phase.CONFIRMED and not entry.unresolved


async def test_an_id_gets_one_intent_ever(tmp_path: Path) -> None:
    journal = RestJournal(tmp_path / "desk.orders.jsonl", DESK)
    await journal.record_intent(DESK, E1, intent())
    with pytest.raises(ValueError, match="no second intent"):
        await journal.record_intent(DESK, E1, intent())
    with pytest.raises(ValueError, match="already intended"):
        journal.begin(DESK, E1)
    assert len(lines(tmp_path / "desk.orders.jsonl")) == 1


async def test_a_failed_intent_write_records_nothing_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = RestJournal(tmp_path / "desk.orders.jsonl", DESK)

    def broken(self: RestJournal, record: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(RestJournal, "append", broken)
    with pytest.raises(OSError, match="disk full"):
        await journal.record_intent(DESK, E1, intent())
    assert journal.get(DESK, E1) is None  # NEW again: the call must not be made, a retry may record


async def test_the_phase_is_pending_while_the_intent_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = RestJournal(tmp_path / "desk.orders.jsonl", DESK)
    writing, may_finish = hold_writes(monkeypatch, RestJournal)
    recording = asyncio.ensure_future(journal.record_intent(DESK, E1, intent()))
    assert await asyncio.to_thread(writing.wait, 5)
    entry = journal.get(DESK, E1)
    assert entry is not None and phase(entry) is Phase.PENDING and entry.intent is None
    assert not await journal.fence(DESK, E1, "not found")  # "not found" would not be true
    may_finish.set()
    await recording
    assert phase(entry) is Phase.INTENDED and not entry.fenced


# --- outcomes, deduplicated by trade id -----------------------------------------------------


async def test_the_same_fill_twice_is_one_line_and_the_first_answer_stands(tmp_path: Path) -> None:
    path = tmp_path / "desk.orders.jsonl"
    journal = RestJournal(path, DESK)
    await journal.record_intent(DESK, E1, intent())
    first = fill(trade_id="T-1")
    assert await journal.record_outcome(DESK, E1, first) is first
    assert await journal.record_outcome(DESK, E1, fill(trade_id="T-1")) is first  # reported again
    assert await journal.record_outcome(DESK, E1, fill(trade_id="T-9")) is first  # a conflict: ignored
    assert await journal.record_outcome(DESK, E1, refusal()) is first  # a fill is a trade
    assert [r["type"] for r in lines(path)] == ["intent", "outcome"]
    assert journal.by_trade_id(DESK, "T-1") is journal.get(DESK, E1)
    assert journal.by_trade_id(DESK, "T-9") is None


async def test_a_fill_found_after_a_reject_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "desk.orders.jsonl"
    journal = RestJournal(path, DESK)
    await journal.record_intent(DESK, E1, intent())
    await journal.record_outcome(DESK, E1, refusal())
    entry = journal.get(DESK, E1)
    assert entry is not None and phase(entry) is Phase.REJECTED
    found = fill(trade_id="T-7")
    assert await journal.record_outcome(DESK, E1, found) is found
    assert await journal.record_outcome(DESK, E1, refusal()) is found
    assert phase(entry) is Phase.CONFIRMED
    reloaded = RestJournal(path, DESK).restore()[(DESK, E1)]
    assert reloaded.outcome == found and phase(reloaded) is Phase.CONFIRMED


async def test_a_booking_exists_only_once_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "books.jsonl"
    ledger = Ledger(path)
    record = ExecutionRecord(DealerId(DESK), E1, RfqId("r-1"), QuoteId("Q-1"), ExecutionOutcome.CONFIRMED,
                             QuoteSide.BID, Decimal("39990"), Decimal(10), NOW, "T-1")
    writing, may_finish = hold_writes(monkeypatch, Ledger)
    ledger.begin(DESK, E1)
    booking = asyncio.ensure_future(ledger.record_outcome(DESK, E1, record, booking=True))
    assert await asyncio.to_thread(writing.wait, 5)
    entry = ledger.get(DESK, E1)
    assert entry is not None and phase(entry) is Phase.PENDING and entry.outcome is None
    may_finish.set()
    assert await booking is record
    assert phase(entry) is Phase.CONFIRMED and lines(path)[0]["dealer_trade_id"] == "T-1"

    def broken(self: Ledger, booked: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Ledger, "append", broken)
    other = ExecutionRecord(DealerId(DESK), E2, RfqId("r-1"), QuoteId("Q-1"), ExecutionOutcome.REJECTED,
                            QuoteSide.BID, Decimal("39990"), Decimal(10), NOW, reason="last look")
    with pytest.raises(OSError):
        await ledger.record_outcome(DESK, E2, other, booking=True)
    assert ledger.get(DESK, E2) is None  # not booked


# --- fences ---------------------------------------------------------------------------------


async def test_a_fence_refuses_any_later_intent_and_survives_a_restart_where_durable(tmp_path: Path) -> None:
    path = tmp_path / "venue.journal"
    journal = CcxtJournal(path)
    assert await journal.fence(DESK, E1, "answered not found")
    entry = journal.get(DESK, E1)
    assert entry is not None and entry.fenced and phase(entry) is Phase.FENCED
    with pytest.raises(ValueError, match="fenced"):
        await journal.record_intent(DESK, E1, {"kind": "intent", "dealer_id": DESK, "execution_id": E1})
    assert await journal.fence(DESK, E1, "again")  # once is enough
    assert [(r["kind"], r["execution_id"]) for r in lines(path)] == [("fence", E1)]

    restarted = CcxtJournal(path)
    assert restarted.restore()[(DESK, E1)].phase is Phase.FENCED


async def test_a_fence_of_a_kind_without_fence_lines_lives_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "desk.orders.jsonl"
    journal = RestJournal(path, DESK)
    assert await journal.fence(DESK, E1, "answered not found")
    entry = journal.get(DESK, E1)
    assert entry is not None and entry.fenced and not path.exists()
    with pytest.raises(ValueError, match="fenced"):
        await journal.record_intent(DESK, E1, intent())
    assert dict(RestJournal(path, DESK).restore()) == {}  # as long as the process: no line


async def test_a_fence_that_cannot_be_written_is_no_fence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = CcxtJournal(tmp_path / "venue.journal")

    def broken(self: CcxtJournal, record: Any) -> None:
        raise OSError("read-only")

    monkeypatch.setattr(CcxtJournal, "append", broken)
    assert not await journal.fence(DESK, E1, "answered not found")
    assert journal.get(DESK, E1) is None


# --- reload from disk -----------------------------------------------------------------------


async def test_restore_reads_back_what_was_recorded_per_dealer(tmp_path: Path) -> None:
    path = tmp_path / "venue.journal"
    journal = CcxtJournal(path)

    def record(kind: str, dealer: str, eid: str, **fields: Any) -> dict[str, Any]:
        return {"kind": kind, "dealer_id": dealer, "execution_id": eid, **fields}

    await journal.record_intent(DESK, E1, record("intent", DESK, E1, client_order_id="c-1"))
    await journal.record_intent("desk-b", E1, record("intent", "desk-b", E1, client_order_id="c-9"))
    await journal.record_outcome("desk-b", E1, record("outcome", "desk-b", E1, confirmed=True,
                                                      dealer_trade_id="T-9"))
    await journal.fence(DESK, E2, "answered not found")
    with path.open("a") as handle:
        handle.write('{"v":1,"kind":"outcome","dealer_id":"desk-a","execu')  # a crash mid-write

    restarted = CcxtJournal(path)
    known = restarted.restore()
    assert set(known) == {(DESK, E1), ("desk-b", E1), (DESK, E2)}
    mine = known[(DESK, E1)]
    assert phase(mine) is Phase.INTENDED and mine.unresolved  # the call may have been made: look it up
    assert mine.intent is not None and mine.intent["client_order_id"] == "c-1"
    assert known[("desk-b", E1)].phase is Phase.CONFIRMED
    assert restarted.by_trade_id("desk-b", "T-9") is known[("desk-b", E1)]
    assert known[(DESK, E2)].phase is Phase.FENCED
    assert [e.execution_id for e in restarted.executions(DESK)] == [E1, E2]
    assert path.read_text().endswith("}\n")  # the torn line was cut


async def test_a_ledger_written_before_the_shared_journal_reads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "books.jsonl"
    path.write_text(
        '{"booked_at":"2026-11-21T10:00:00.000000Z","dealer_id":"desk-a","dealer_trade_id":"desk-a-1",'
        '"execution_id":"e-1","outcome":"confirmed","price":"39990","quantity":"10","quote_id":"Q-1",'
        '"reason":"","rfq_id":"r-1","side":"bid","v":1}\n')
    ledger = Ledger(path)
    [record] = ledger.load()
    assert record.to_json() == path.read_text().strip()  # the same bytes when written again
    assert ledger.restore()[(DESK, E1)].phase is Phase.CONFIRMED


def test_a_bad_line_is_an_error_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "books.jsonl"
    path.write_text('{"v":2,"dealer_id":"desk-a"}\n')
    with pytest.raises(LedgerError, match=r"books\.jsonl:1: bad ledger line: not a version 1 ledger record"):
        Ledger(path).restore()
    assert issubclass(LedgerError, JournalError)
    path.write_text('{"v":1,"type":"nonsense"}\n')
    with pytest.raises(JournalError, match=r"books\.jsonl:1: bad journal line: unknown record type"):
        RestJournal(path, DESK).restore()
