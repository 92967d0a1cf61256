"""Checkpoint log rotation (rfq_engine/store/checkpoint_files.py): past a size the writer seals
the live file as ``<path>.<n>`` and goes on in a new one that links to it; ``verify`` and
the next writer read the segments and the live file as one chain, and still catch a
segment removed or edited, and a truncation with an older live file put back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rfq_engine.store import SqlAuditStore, StoreError
from rfq_engine.store.checkpoint import DONE, read_log
from rfq_engine.store.checkpoint_files import ROTATE_ENV, sealed_segments


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ROTATE_ENV, "1500")  # a few batches a segment
    monkeypatch.setenv("RFQ_AUDIT_CHECKPOINT_KEY", "rotation-test-key")


def url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"


async def write(tmp_path: Path, events: int) -> None:
    store = SqlAuditStore(url(tmp_path))
    await store.open()
    try:
        for i in range(events):
            await store.append("rfq-1", "rfq.state_changed", "engine", {"i": i})
    finally:
        await store.close()


async def verify(tmp_path: Path) -> tuple[bool, int | None, str]:
    reader = SqlAuditStore(url(tmp_path), readonly=True)
    await reader.open()
    try:
        report = await reader.verify()
    finally:
        await reader.close()
    return report.ok, report.first_bad_seq, str(report.problem)


def log_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db.head"


async def test_the_log_is_sealed_in_segments_and_verifies_across_them(tmp_path: Path) -> None:
    await write(tmp_path, 30)
    live = log_path(tmp_path)
    segments = sealed_segments(live)
    assert len(segments) >= 3, [p.name for p in segments]
    assert live.stat().st_size < 1500 + 400
    first_live = json.loads(live.read_text().splitlines()[0])
    last_sealed = json.loads(segments[-1].read_text().splitlines()[-1])
    assert first_live["n"] == last_sealed["n"] + 1 and first_live["kind"] == DONE
    assert (first_live["seq"], first_live["hash"]) == (last_sealed["seq"], last_sealed["hash"])
    assert segments[-1].name == f"audit.db.head.{last_sealed['n']:012d}"
    state = read_log(live)
    assert state is not None and state.problem is None and state.entries[0].n == 1
    assert (await verify(tmp_path))[0]
    await write(tmp_path, 5)  # the next writer reads the segments too, and goes on
    assert (await verify(tmp_path))[0]
    state = read_log(live)
    assert state is not None and state.last is not None and state.last.seq == 35


async def test_a_removed_segment_fails_verify_and_the_writer(tmp_path: Path) -> None:
    await write(tmp_path, 30)
    segments = sealed_segments(log_path(tmp_path))
    segments[1].unlink()  # a middle segment
    ok, _, problem = await verify(tmp_path)
    assert not ok and "entries were removed, or the log was spliced" in problem, problem
    with pytest.raises(StoreError, match="refusing to write"):
        await write(tmp_path, 1)


async def test_the_oldest_segment_removed_or_edited_fails(tmp_path: Path) -> None:
    await write(tmp_path, 30)
    oldest = sealed_segments(log_path(tmp_path))[0]
    lines = oldest.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["seq"] += 1  # edited: its check no longer matches, so it is no entry at all
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    oldest.write_text("".join(lines))
    ok, _, problem = await verify(tmp_path)
    assert not ok and "entry 3 follows entry 1" in problem, problem
    oldest.unlink()
    ok, _, problem = await verify(tmp_path)
    assert not ok and "starts at entry" in problem, problem


async def test_a_truncation_with_an_older_live_file_put_back_is_caught(tmp_path: Path) -> None:
    """The attacker cuts the database back and puts back the live file as it was before
    the last rotations: the segments sealed since then still hold the later heads."""
    await write(tmp_path, 12)
    live = log_path(tmp_path)
    older = live.read_bytes()
    older_n = len(sealed_segments(live))
    await write(tmp_path, 20)
    assert len(sealed_segments(live)) > older_n
    import sqlite3

    db = sqlite3.connect(tmp_path / "audit.db")
    db.execute("DELETE FROM audit_events WHERE seq > 12")
    db.commit()
    db.close()
    live.write_bytes(older)
    ok, _, problem = await verify(tmp_path)
    assert not ok and "follows entry" in problem, problem  # the live file is older than its segments


async def test_a_log_sealed_by_hand_is_continued_in_a_new_live_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator does with an append-only log (no engine running): rename the live
    file to its segment name; the next writer goes on in a new one."""
    monkeypatch.setenv(ROTATE_ENV, "0")
    await write(tmp_path, 5)
    live = log_path(tmp_path)
    state = read_log(live)
    assert state is not None and state.last is not None and not sealed_segments(live)
    live.rename(live.with_name(f"{live.name}.{state.last.n:012d}"))
    assert (await verify(tmp_path))[0]
    await write(tmp_path, 3)
    assert live.exists() and len(sealed_segments(live)) == 1
    assert json.loads(live.read_text().splitlines()[0])["n"] == state.last.n + 1
    assert (await verify(tmp_path))[0]
