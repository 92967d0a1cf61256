"""The SQLite writer's own machinery: changed-column UPDATEs, WAL checkpoints beside the
commits, the checkpoint written in the commit's hop and synced after, rendered timestamps."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from audit_samples import lifecycle, quote, submitted

from rfq_engine.domain import format_ts
from rfq_engine.store import EventType, SqlAuditStore, read_checkpoint
from rfq_engine.store.base import QuoteRow, RfqRow
from rfq_engine.store.chain import ts_text
from rfq_engine.store.tables import quotes, rfqs
from rfq_engine.store.updates import ColumnUpdates

E = EventType
T0 = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)


def quote_row(**kw: Any) -> QuoteRow:
    values: dict[str, Any] = {
        "rfq_id": "r1", "dealer_id": "d1", "quote_id": "q1", "bid": None,
        "ask": Decimal("100.5"), "quantity": Decimal(2), "valid_until": T0, "received_at": T0,
        "status": "received", "rank": None, "reason": "",
    }
    values.update(kw)
    return QuoteRow(**values)


def test_only_changed_columns_are_updated() -> None:
    updates = ColumnUpdates(quotes)
    before = quote_row()
    ranked = quote_row(ask=before.ask, valid_until=before.valid_until, status="valid", rank=1)
    same = quote_row(ask=Decimal("100.50"), received_at=T0.astimezone(timezone(timedelta(hours=2))))
    groups = updates.group([(before, ranked), (before, same)])
    # status and rank (indexes of the non-key columns); equal decimals and instants: no change
    assert list(groups) == [(5, 6)]
    [(changed, params)] = groups.items()
    assert updates.sql(changed) == (
        "UPDATE quotes SET status = ?, rank = ? WHERE rfq_id = ? AND dealer_id = ? AND quote_id = ?"
    )
    assert params == [("valid", 1, "r1", "d1", "q1")]
    moved = quote_row(ask=Decimal("101"), valid_until=T0 + timedelta(seconds=1))
    [(changed, params)] = updates.group([(before, moved)]).items()
    assert updates.sql(changed).startswith("UPDATE quotes SET ask = ?, valid_until = ? WHERE")
    assert params == [("101", format_ts(T0 + timedelta(seconds=1)), "r1", "d1", "q1")]


def test_a_spec_is_compared_by_identity_not_equality() -> None:
    """{"x": 1} == {"x": True}, yet their canonical JSON differs: an equal but different
    spec object is rewritten."""
    row = RfqRow("r1", None, "alice", "m", "sell", Decimal(1), "BTC", "open", Decimal(10),
                 Decimal(0), T0, T0, "", {"x": 1})
    other = RfqRow(*[getattr(row, name) for name in row.__slots__][:-1], {"x": True})
    updates = ColumnUpdates(rfqs)
    assert updates.group([(row, row)]) == {}
    [(changed, params)] = updates.group([(row, other)]).items()
    assert "spec = ?" in updates.sql(changed) and params[0][0] == '{"x":true}'


async def test_a_projection_row_deleted_behind_the_writer_is_reread(tmp_path: Path) -> None:
    """The writer updates rows it believes present (cached). When one is gone, the batch is
    redone from the database, and the rows follow the rules applied to what is stored."""
    db = tmp_path / "audit.db"
    store = SqlAuditStore(f"sqlite+aiosqlite:///{db}")
    async with store:
        await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
        await store.append("r2", E.RFQ_SUBMITTED, "bob", submitted(requester="bob"))
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("DELETE FROM rfqs WHERE rfq_id = 'r1'")
        conn.close()
        await asyncio.gather(
            store.append("r1", E.RFQ_STATE_CHANGED, "engine", {"from": "created", "to": "open"}),
            store.append("r2", E.RFQ_STATE_CHANGED, "engine", {"from": "created", "to": "open"}),
        )
        assert await store.get_rfq("r1") is None  # a state change needs its rfq row
        r2 = await store.get_rfq("r2")
        assert r2 is not None and r2.state == "open"
        assert store.stats.failed_batches == 0
        await store.append("r2", E.RFQ_STATE_CHANGED, "engine", {"from": "open", "to": "expired"})
        r2 = await store.get_rfq("r2")
        assert r2 is not None and r2.state == "expired"
        assert (await store.verify()).ok


async def test_wal_checkpoints_run_beside_the_writer(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    store = SqlAuditStore(f"sqlite+aiosqlite:///{db}")
    async with store:
        committer = store._committer
        assert committer is not None
        wal = committer.wal
        wal._every_rows = 50
        size_before = db.stat().st_size
        for batch in range(20):
            await asyncio.gather(*(
                store.append(f"r{batch}-{i}", E.QUOTE_RECEIVED, "d1", quote("d1", f"q{i}"))
                for i in range(40)
            ))
        await store.flush()
        await wal.wait_idle()  # the last background checkpoint may still be running
        assert wal.stats.background >= 5 and wal.stats.failed == 0
        assert wal.stats.inline == 0  # with pauses between batches, the WAL starts over
        assert db.stat().st_size > size_before  # pages reached the database file
        conn = sqlite3.connect(db)
        try:  # the writer's own connection never checkpoints inside a commit
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
        finally:
            conn.close()
        assert await asyncio.get_running_loop().run_in_executor(
            committer._executor,
            lambda: committer._conn.execute("PRAGMA wal_autocheckpoint").fetchone(),
        ) == (0,)
        assert (await store.verify()).ok


async def test_a_wal_that_stopped_starting_over_is_checkpointed_by_the_writer(
    tmp_path: Path,
) -> None:
    """Under a continuous load the WAL never restarts after a background checkpoint; once one
    reports more than ``restart_frames``, the writer checkpoints before its next BEGIN."""
    db = tmp_path / "audit.db"
    store = SqlAuditStore(f"sqlite+aiosqlite:///{db}", batch_max=50)
    async with store:
        committer = store._committer
        assert committer is not None
        wal = committer.wal
        wal._every_rows, wal._restart_frames = 20, 5
        futures = [
            store.append(f"r{i // 4}", E.QUOTE_RECEIVED, "d1", quote("d1", f"q{i}"))
            for i in range(3000)
        ]
        await asyncio.gather(*futures)
        assert wal.stats.background >= 1 and wal.stats.inline >= 1 and wal.stats.failed == 0
        wal_size = os.stat(f"{db}-wal").st_size
        assert wal_size < 4 * 1024 * 1024, wal_size  # bounded
        assert (await store.verify()).ok
        assert len(await store.quotes("r0")) == 4


async def test_checkpoint_is_in_place_before_the_futures_resolve(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    head = Path(f"{db}.head")
    seen: list[tuple[int, int]] = []
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}") as store:
        for i in range(5):
            future = store.append("r1", "test.x", "engine", {"i": i})

            def on_done(f: asyncio.Future[Any]) -> None:
                cp = read_checkpoint(head)  # read in the callback: before anyone awaits it
                assert cp is not None
                seen.append((f.result().seq, cp.seq))

            future.add_done_callback(on_done)
            await future
    assert len(seen) == 5 and all(cp_seq >= seq for seq, cp_seq in seen), seen


async def test_a_failed_checkpoint_sync_is_counted_and_the_log_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rfq_engine.store import checkpoint as checkpoint_module

    db = tmp_path / "audit.db"
    head = Path(f"{db}.head")
    real = os.fdatasync
    failures: list[int] = []

    def failing_once(fd: int) -> None:
        if not failures:
            failures.append(fd)
            raise OSError(5, "Input/output error")
        real(fd)

    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}") as store:
        await store.append("r1", "test.x", "engine", {"i": 0})
        await store.flush()
        inode = os.stat(head).st_ino
        monkeypatch.setattr(checkpoint_module.os, "fdatasync", failing_once)
        await store.append("r1", "test.x", "engine", {"i": 1})
        await store.flush()  # the batch's commit has ended: its checkpoint sync was asked for
        checkpoint = store._checkpoint
        assert checkpoint is not None
        await checkpoint.synced()  # the background fdatasync, which fails once
        assert failures and store.stats.checkpoint_errors == 1
        event = await store.append("r1", "test.x", "engine", {"i": 2})
        assert os.stat(head).st_ino == inode  # an append-only log is never replaced
        cp = read_checkpoint(head)
        assert cp is not None and cp.seq == event.seq
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}", readonly=True) as reader:
        report = await reader.verify()
    assert report.ok and report.checkpoint_seq == 3


def test_rendered_timestamps_are_by_instant() -> None:
    utc = datetime(2026, 3, 29, 0, 30, 0, 1, tzinfo=UTC)
    assert ts_text(utc) == "2026-03-29T00:30:00.000001Z"
    paris = utc.astimezone(timezone(timedelta(hours=1)))  # equal instant, other tzinfo
    assert ts_text(paris) == format_ts(paris) == ts_text(utc)
    with pytest.raises(ValueError, match="naive"):
        ts_text(utc.replace(tzinfo=None))


async def test_lifecycle_rows_survive_a_reopen(tmp_path: Path) -> None:
    """Rows written by UPDATE of changed columns read back whole after a reopen."""
    db = tmp_path / "audit.db"
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}") as store:
        await lifecycle(store, "r1")
        before = (await store.get_rfq("r1"), await store.quotes("r1"), await store.awards("r1"))
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}", readonly=True) as reader:
        after = (await reader.get_rfq("r1"), await reader.quotes("r1"), await reader.awards("r1"))
    assert after == before


async def test_the_writer_page_cache_is_configured(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from rfq_engine.config import StoreConfig
    from rfq_engine.store import open_store

    with pytest.raises(ValidationError, match="sqlite_cache_mib"):
        StoreConfig.model_validate({"sqlite_cache_mib": 0})
    mib = StoreConfig.model_validate({"sqlite_cache_mib": 128}).sqlite_cache_mib
    store = open_store(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}", sqlite_cache_mib=mib)
    assert isinstance(store, SqlAuditStore)
    async with store:
        committer = store._committer
        assert committer is not None
        assert await asyncio.get_running_loop().run_in_executor(
            committer._executor,
            lambda: committer._conn.execute("PRAGMA cache_size").fetchone(),
        ) == (-128 * 1024,)


def test_sqlite_event_rows_are_what_the_compiled_insert_expects(tmp_path: Path) -> None:
    """The SQLite writer builds event rows directly (``event_row``) instead of through the
    generic ``Bulk.params``: both must give the same parameters."""
    from rfq_engine.store.events import AuditEvent

    store = SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}")
    events = [
        AuditEvent(1, T0, "r1", "quote.received", "d1", '{"a":"1"}', "0" * 64, "a" * 64),
        AuditEvent(2, T0.replace(microsecond=0), None, "engine.started", "engine", "{}",
                   "a" * 64, "b" * 64),
    ]
    rows, _ = store._prepare(events, [{"a": "1"}, {}])
    assert rows == store._insert_events.params(events)
    assert rows[1][1] == "2026-11-21T10:00:00.000000Z"


async def test_a_failed_background_wal_checkpoint_is_retried_by_the_writer(tmp_path: Path) -> None:
    """A background checkpoint that raises (here: its connection closed under it) is
    counted, and the writer checkpoints itself before its next transaction."""
    db = tmp_path / "audit.db"
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}") as store:
        committer = store._committer
        assert committer is not None
        wal = committer.wal
        wal._every_rows = 1
        broken = sqlite3.connect(db, check_same_thread=False)
        broken.close()
        wal._conn, working = broken, wal._conn  # every statement on it raises ProgrammingError
        await store.append("r1", E.QUOTE_RECEIVED, "d1", quote("d1", "q1"))
        await store.flush()  # the whole commit, which asks for the checkpoint at its end
        await wal.wait_idle()
        assert wal.stats.failed == 1 and wal.stats.background == 0
        await store.append("r1", E.QUOTE_RECEIVED, "d1", quote("d1", "q2"))
        assert wal.stats.inline == 1
        assert len(await store.quotes("r1")) == 2 and (await store.verify()).ok
        await wal.wait_idle()
        wal._conn = working  # closed with the store, on its own thread


async def test_the_wait_of_an_append_counts_its_queue_behind_a_slow_commit(tmp_path: Path) -> None:
    """``rfq_audit_wait_seconds`` is what an acknowledged call waited for the store: from its
    append to durable, the time queued behind the previous batch's work included (here its
    query-table transaction, held 0.3 s on the writer's one thread), not only its own commit."""
    from types import SimpleNamespace

    from test_store_sqlite_projection import Gate, committer_of

    from rfq_engine.api.metrics import _AuditWaits
    from rfq_engine.store.batch import WAIT_BUCKETS

    hold = 0.3
    async with SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}") as store:
        gate = Gate(committer_of(store))
        first = store.append("r1", EventType.RFQ_SUBMITTED, "alice", submitted())
        await gate.reached()  # durable; its query tables held
        await first
        second = store.append("r2", EventType.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="c-2"))
        await asyncio.sleep(hold)  # the slowness itself, not a wait for something to happen
        gate.release()
        await second
        stats = store.stats
        assert sum(stats.waits) == stats.batches == 2
        slow = WAIT_BUCKETS.index(0.25) + 1  # the buckets above 0.25 s
        assert sum(stats.waits[slow:]) == 1 and sum(stats.waits[:slow]) == 1
        assert hold <= stats.wait_s < hold + 5
        (family,) = _AuditWaits(SimpleNamespace(store=store)).collect()  # type: ignore[arg-type]
        counts = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
        assert (counts["0.25"], counts["0.5"], counts["+Inf"]) == (1, 2, 2)
