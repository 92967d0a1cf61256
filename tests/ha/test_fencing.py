"""The fencing epoch on PostgreSQL: a standby waits for the writer's lock, takes it with the
next epoch, and a writer that lost its lock's session while another took the lead cannot
append a single event (it is fenced inside the commit's transaction)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from rfq_engine.store import SqlAuditStore, StoreError
from rfq_engine.store.leader import Candidate, Role
from rfq_engine.store.outage import RetryPolicy, StoreState, WriterFenced
from tests.faults.pgkit import PgDatabase

pytestmark = pytest.mark.postgres
REPO = Path(__file__).resolve().parents[2]
BEFORE_EPOCHS = "cc1a59a"
"""The last commit whose store had no ``leader_epochs`` table."""


def store(db: PgDatabase, candidate: Candidate | None = None) -> SqlAuditStore:
    return SqlAuditStore(db.url, checkpoint_path=None, candidate=candidate,
                         retry=RetryPolicy(max_delay_s=0.1, give_up_after_s=5, close_grace_s=1,
                                           probe_interval_s=None))


async def epoch_row(db: PgDatabase) -> tuple[int, str, str | None]:
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        row = await conn.fetchrow("SELECT epoch, name, address FROM leader_epochs WHERE id = 1")
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), str(row[1]), row[2]


async def kill_lock_session(db: PgDatabase) -> None:
    """End the session that holds the writer's advisory lock (and only that one)."""
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_database d "
            "ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted "
            "AND d.datname = $1", db.name)
    finally:
        await conn.close()
    assert killed == 1


def has_commit(commit: str) -> bool:
    found = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{commit}^{{commit}}"],
                           capture_output=True, check=False)
    return found.returncode == 0


def write_with_old_code(old: Path, url: str) -> None:
    """Three events written by the rfq_engine of ``BEFORE_EPOCHS`` (git archive), in a
    process of its own."""
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_EPOCHS, "rfq_engine",
                              "dealer_adapters"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    script = ("import asyncio\nfrom rfq_engine.store import SqlAuditStore\n"
              "async def main():\n"
              f"    s = SqlAuditStore({url!r}, checkpoint_path=None)\n"
              "    await s.open()\n"
              "    for i in range(3):\n"
              "        await s.append(None, 'engine.started', 'old', {'i': i})\n"
              "    await s.close()\n"
              "asyncio.run(main())\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=old, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(old)}, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr


async def test_a_standby_waits_for_the_lock_and_takes_the_next_epoch(db: PgDatabase) -> None:
    first = store(db)
    await first.open()
    await first.append(None, "engine.started", "a", {})
    assert (await epoch_row(db))[0] == 1
    waiting = Candidate("engine-b", "https://b.example:8443", poll_s=0.05)
    second = store(db, waiting)
    opening = asyncio.ensure_future(second.open())
    for _ in range(100):  # the standby polls and learns who leads
        if waiting.leader is not None:
            break
        await asyncio.sleep(0.02)
    assert not opening.done() and waiting.role is Role.STANDBY
    assert waiting.leader is not None and waiting.leader.epoch == 1
    await first.close()
    await asyncio.wait_for(opening, 10)
    try:
        assert waiting.role is Role.LEADER and waiting.epoch == 2
        assert await epoch_row(db) == (2, "engine-b", "https://b.example:8443")
        event = await second.append(None, "engine.started", "b", {})
        assert event.seq == 2
        assert (await second.verify()).ok
    finally:
        await second.close()


async def test_a_second_writer_without_ha_is_still_refused(db: PgDatabase) -> None:
    first = store(db)
    await first.open()
    try:
        with pytest.raises(StoreError, match="another writer holds the audit lock"):
            await store(db).open()
    finally:
        await first.close()


async def test_an_old_leader_that_wakes_up_after_a_takeover_appends_nothing(
        db: PgDatabase) -> None:
    """A's lock session ends (a paused process whose session the server dropped); B takes
    the lead; A's next batch, on its still-open pool, is refused inside its transaction.
    A does not wait for the lock, so it has no watchdog: only the commit's check stops it."""
    old = Candidate("engine-a", wait=False)
    a = store(db, old)
    await a.open()
    await a.append(None, "engine.started", "a", {})
    new = Candidate("engine-b", poll_s=0.05)
    b = store(db, new)
    opening = asyncio.ensure_future(b.open())
    await kill_lock_session(db)
    await asyncio.wait_for(opening, 10)
    try:
        assert new.epoch == 2
        with pytest.raises(StoreError):
            await a.append(None, "rfq.submitted", "a", {"late": True})
        assert old.role is Role.DEPOSED and "epoch" in str(old.problem)
        assert a.health.state is StoreState.STOPPED
        event = await b.append(None, "engine.started", "b", {})
        assert event.seq == 2, "the old leader's event must not have landed"
        assert [e.actor for e in await b.events()] == ["a", "b"]
        assert (await b.verify()).ok
    finally:
        await a.close()
        await b.close()


async def test_a_lost_lock_session_with_nobody_else_is_taken_again_with_the_next_epoch(
        db: PgDatabase) -> None:
    candidate = Candidate("engine-a", poll_s=0.05)
    a = store(db, candidate)
    await a.open()
    try:
        await a.append(None, "engine.started", "a", {})
        await kill_lock_session(db)
        for _ in range(200):  # the watchdog sees the dead session within a second or so
            if (await epoch_row(db))[0] == 2:
                break
            await asyncio.sleep(0.05)
        assert candidate.role is Role.LEADER and candidate.epoch == 2
        assert (await a.append(None, "engine.started", "a", {})).seq == 2
    finally:
        await a.close()


async def test_retaking_after_someone_else_led_meanwhile_is_fenced(db: PgDatabase) -> None:
    """A loses its session; B leads (epoch 2), appends and leaves; A, taking the free lock
    back (as after a failed commit), must not write on top of B's events: its epoch is no
    longer current. (A has no watchdog here, so it cannot win the lock back before B.)"""
    old = Candidate("engine-a", wait=False)
    a = store(db, old)
    await a.open()
    await a.append(None, "engine.started", "a", {})
    b = store(db, Candidate("engine-b", poll_s=0.05))
    opening = asyncio.ensure_future(b.open())
    await kill_lock_session(db)
    await asyncio.wait_for(opening, 10)
    await b.append(None, "engine.started", "b", {})
    await b.close()
    lock = a._pg_lock
    assert lock is not None
    try:
        with pytest.raises(WriterFenced, match="no longer 1"):
            await lock.ensure()
        assert old.role is Role.DEPOSED
        assert (await epoch_row(db))[0] == 2
        with pytest.raises(StoreError):
            await a.append(None, "rfq.submitted", "a", {"late": True})
    finally:
        await a.close()
    reader = SqlAuditStore(db.url, checkpoint_path=None, readonly=True)
    await reader.open()
    try:
        assert [e.actor for e in await reader.events()] == ["a", "b"]
        assert (await reader.verify()).ok
    finally:
        await reader.close()


@pytest.mark.slow
async def test_a_store_written_before_the_epoch_table_opens_and_gets_epoch_1(
        db: PgDatabase, tmp_path: Path) -> None:
    """The store as the code before ``leader_epochs`` wrote it (that commit's rfq_engine,
    from git, in a process of its own), then opened by this code: the table is added."""
    if not await asyncio.to_thread(has_commit, BEFORE_EPOCHS):
        pytest.skip(f"needs the git history down to {BEFORE_EPOCHS}")
    await asyncio.to_thread(write_with_old_code, tmp_path / "old", db.url)
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        assert await conn.fetchval("SELECT to_regclass('leader_epochs')") is None
    finally:
        await conn.close()
    candidate = Candidate("engine-a")
    new = store(db, candidate)
    await new.open()
    try:
        assert candidate.epoch == 1
        assert (await new.append(None, "engine.started", "new", {})).seq == 4
        report = await new.verify()
        assert report.ok and report.head_seq == 4
    finally:
        await new.close()
