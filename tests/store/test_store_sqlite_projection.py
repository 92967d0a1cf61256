"""The SQLite writer's two transactions: the events, then the query tables.

An append is acknowledged once its events are durable; the query tables follow in a
second transaction. Readers must never notice: the writing process waits for the tables,
a read-only reader merges the missing rows itself, and tables left behind (a failure, a
kill between the two commits) are replayed from the events.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from audit_samples import award, confirmed, fill, lifecycle, quote, ranked, state, submitted

from rfq_engine.store import EventType, SqlAuditStore, StoreError
from rfq_engine.store.sqlite_commit import SqliteCommitter

E = EventType


class Gate:
    """Holds the writer's projection transaction until ``release``."""

    def __init__(self, committer: SqliteCommitter) -> None:
        self.entered = threading.Event()
        self._open = threading.Event()
        real = committer._project

        def gated(*args: Any) -> None:
            self.entered.set()
            self._open.wait(30)
            real(*args)

        committer._project = gated  # type: ignore[method-assign]

    async def reached(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 30)

    def release(self) -> None:
        self._open.set()


def committer_of(store: SqlAuditStore) -> SqliteCommitter:
    committer = store._committer
    assert committer is not None
    return committer


def watermark(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT seq FROM projection_state").fetchone()[0])
    finally:
        conn.close()


async def answers(store: SqlAuditStore) -> dict[str, Any]:
    """Every query-table read, for comparing two readers."""
    ids = ["r1", "r2"]
    return {
        "rfqs": await store.rfqs(),
        "open": await store.rfqs(states=["open", "awarding"], limit=1),
        "get": [await store.get_rfq(r) for r in ids],
        "find": [await store.find_rfq("alice", c) for c in ("c-1", "c-2")],
        "quotes": [await store.quotes(r) for r in ids],
        "awards": [await store.awards(r) for r in ids],
        "fills": await store.fills(),
        "fills_d2": await store.fills(dealer_id="d2"),
        "notional": await store.filled_notional(mandate="hedge"),
    }


async def test_an_append_is_acknowledged_before_its_tables_and_a_read_waits_for_them(
    tmp_path: Path,
) -> None:
    async with SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}") as store:
        await lifecycle(store, "r1")
        await store.flush()  # the gate holds the next batch's projection, not this one's
        gate = Gate(committer_of(store))
        event = await store.append("r2", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="c-2"))
        await gate.reached()  # acknowledged while its projection is held
        assert committer_of(store).projected == event.seq - 1
        assert [e.seq for e in await store.events()][-1] == event.seq  # the events are there
        read = asyncio.create_task(store.get_rfq("r2"))
        await asyncio.sleep(0)
        assert not read.done()
        gate.release()
        row = await read
        assert row is not None and row.state == "created"
        assert committer_of(store).projected == event.seq


async def test_a_read_only_reader_merges_the_rows_the_tables_do_not_have_yet(
    tmp_path: Path,
) -> None:
    db = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{db}"
    async with SqlAuditStore(url) as store:
        await lifecycle(store, "r1")
        await store.flush()  # the gate holds the next batch's projection, not this one's
        gate = Gate(committer_of(store))
        batch = [  # one batch touching every table, and rows that already exist
            ("r2", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="c-2")),
            ("r2", E.RFQ_STATE_CHANGED, "engine", state("created", "open")),
            ("r2", E.QUOTE_RECEIVED, "d1", quote("d1", "q1", ask="99")),
            ("r2", E.QUOTE_RECEIVED, "d2", quote("d2", "q2", ask="98")),
            ("r2", E.QUOTES_RANKED, "engine", ranked([("d2", "q2"), ("d1", "q1")])),
            ("r2", E.RFQ_STATE_CHANGED, "engine", state("open", "awarding")),
            ("r2", E.AWARD_DECIDED, "engine", award("x2", "d2", "q2", price="98")),
            ("r2", E.EXECUTION_CONFIRMED, "d2", confirmed("x2", "d2")),
            ("r2", E.FILL_RECORDED, "engine", fill("f2", "x2", "d2", notional="392")),
            ("r1", E.RFQ_STATE_CHANGED, "engine", state("filled", "filled", "amended")),
        ]
        await asyncio.gather(*(store.append(*item) for item in batch))
        await gate.reached()
        raw = sqlite3.connect(db)
        try:  # the file's tables do not show the batch yet
            assert raw.execute("SELECT COUNT(*) FROM rfqs WHERE rfq_id = 'r2'").fetchone() == (0,)
        finally:
            raw.close()
        async with SqlAuditStore(url, readonly=True) as reader:
            seen = await answers(reader)
        gate.release()
        await store.flush()
        assert seen == await answers(store)
    assert seen["get"][1].state == "awarding" and seen["get"][0].reason == "amended"
    assert [f.fill_id for f in seen["fills_d2"]] == ["f2"]
    assert seen["find"] == ["r1", "r2"] and seen["open"][0].rfq_id == "r2"


async def test_tables_left_behind_are_replayed_when_the_writer_opens(tmp_path: Path) -> None:
    """As a kill between the two commits leaves them (the crash test does it for real)."""
    db = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{db}"
    async with SqlAuditStore(url) as store:
        await lifecycle(store, "r1")
        await store.flush()  # the tables of the lifecycle too
        committer = committer_of(store)

        def broken(*args: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error (test)")

        committer._project = broken  # type: ignore[method-assign]
        event = await store.append("r2", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="c-2"))
        await store.flush()
        assert isinstance(committer.projection_error, sqlite3.OperationalError)
        with pytest.raises(StoreError, match="behind the audit log"):
            await store.get_rfq("r2")
        assert (await store.verify()).ok  # the record itself is whole
        async with SqlAuditStore(url, readonly=True) as reader:
            row = await reader.get_rfq("r2")
            assert row is not None and row.state == "created"
    assert watermark(db) == event.seq - 1
    async with SqlAuditStore(url) as store:  # replayed before the writer starts
        assert committer_of(store).projected == event.seq
        row = await store.get_rfq("r2")
        assert row is not None and row.client_rfq_id == "c-2"
    assert watermark(db) == event.seq


async def test_a_failed_projection_is_replayed_by_the_next_read_or_commit(tmp_path: Path) -> None:
    async with SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}") as store:
        committer = committer_of(store)
        real = committer._project
        failures: list[int] = []

        def fails_once(*args: Any) -> None:
            if not failures:
                failures.append(1)
                raise sqlite3.OperationalError("database is locked (test)")
            real(*args)

        committer._project = fails_once  # type: ignore[method-assign]
        await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
        await store.flush()
        assert committer.projection_error is not None
        row = await store.get_rfq("r1")  # the read replays the missing event first
        assert row is not None and committer.projection_error is None
        failures.clear()
        await store.append("r1", E.RFQ_STATE_CHANGED, "engine", state("created", "open"))
        await store.append("r1", E.QUOTE_RECEIVED, "d1", quote("d1", "q1"))  # replays both
        await store.flush()
        assert committer.projection_error is None
        row = await store.get_rfq("r1")
        assert row is not None and row.state == "open"
        assert [q.quote_id for q in await store.quotes("r1")] == ["q1"]


async def test_an_existing_database_without_a_watermark_is_taken_as_current(tmp_path: Path) -> None:
    """A database written before the split committed its tables with the events."""
    db = tmp_path / "audit.db"
    url = f"sqlite+aiosqlite:///{db}"
    async with SqlAuditStore(url) as store:
        await lifecycle(store, "r1")
        head = (await store.events())[-1].seq
    raw = sqlite3.connect(db)
    try:
        raw.execute("DROP TABLE projection_state")
        raw.commit()
    finally:
        raw.close()
    async with SqlAuditStore(url, readonly=True) as reader:  # no table: current
        row = await reader.get_rfq("r1")
        assert row is not None and row.state == "filled"
    async with SqlAuditStore(url) as store:
        assert committer_of(store).projected == head
        await store.append("r1", E.RFQ_STATE_CHANGED, "engine", state("filled", "filled", "x"))
    assert watermark(db) == head + 1


async def test_under_load_one_table_transaction_serves_several_commits_and_reads_stay_current(
    tmp_path: Path,
) -> None:
    """Commits back to back (events always queued): the query tables are brought up to date
    for several batches at once (writer.AFTER_EVERY_S), not once per batch. A reader still
    sees every row of what it was told is durable: it makes the deferred update run."""
    async with SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}", batch_max=5) as store:
        appended = [store.append(f"r{n}", E.RFQ_SUBMITTED, "alice",
                                 submitted(client_rfq_id=f"c-{n}")) for n in range(600)]
        last = await appended[-1]
        assert store.stats.batches >= 120  # at most 5 events a commit
        assert store.stats.settles < store.stats.batches / 2, store.stats
        row = await store.get_rfq("r599")  # read right after the acknowledgement
        assert row is not None and row.client_rfq_id == "c-599"
        assert committer_of(store).projected == last.seq
        assert len(await store.rfqs()) == 600
