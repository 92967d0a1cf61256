"""``verify`` while the writer keeps committing (the API's ``GET /audit/verify`` under
traffic). The log is read before the rows, so rows committed in between are past it; it is
then read once more. By that second read the writer may have committed *further* batches,
whose entries name seqs past the rows read: that is a writer running ahead, not rows
deleted. It used to be reported as "events not covered by the checkpoint log" about
one verify in four in ``tests/api/test_hostile_input.py``. A real tail deletion still
fails."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from rfq_engine.store import open_store
from rfq_engine.store.chain import RawRow
from rfq_engine.store.verify import verify_pages


async def _append(store: Any, n: int) -> None:
    for i in range(n):
        store.append("r-1", "rfq.note", "alice", {"i": i})
    await store.flush()


async def test_batches_committed_during_verify_are_not_rows_deleted(tmp_path: Path) -> None:
    store: Any = open_store(f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    await store.open()
    try:
        await _append(store, 4)

        async def pages_with_a_running_writer() -> AsyncGenerator[Sequence[RawRow], None]:
            await _append(store, 11)  # after the log was read: rows 5..15 past it
            async for page in store._raw_pages():
                yield page
            await _append(store, 3)  # after the rows were read: entries past seq 15

        report = await verify_pages(pages_with_a_running_writer(), store._checkpoint)
        assert report.ok, report
        assert report.head_seq == 15
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_a_deleted_tail_still_fails(tmp_path: Path) -> None:
    store: Any = open_store(f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    await store.open()
    try:
        await _append(store, 6)

        async def pages_without_the_last_rows() -> AsyncGenerator[Sequence[RawRow], None]:
            async for page in store._raw_pages():
                yield [row for row in page if row[0] <= 4]

        report = await verify_pages(pages_without_the_last_rows(), store._checkpoint)
        assert not report.ok and "deleted" in (report.problem or ""), report
    finally:
        await store.close()
