"""Chain heads witnessed under ``rfq serve --ha``: each engine keeps its own checkpoint log,
each term opens with a ``lead`` entry for the head it adopted, both engines publish to one
witness, and ``verify`` accepts the heads of every epoch, from either engine's log, while a
truncation plus an older checkpoint log put back is still caught (naming the witnessed seq).

Two writers on one PostgreSQL database with a failover between them (the old leader's lock
session killed, as when its process or machine dies; it is then fenced), in this process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from rfq_engine.store import SqlAuditStore, StoreError, chain_hash
from rfq_engine.store.checkpoint import DONE, INTENT, LEAD, Entry, read_log
from rfq_engine.store.leader import Candidate, leading_as
from rfq_engine.store.outage import RetryPolicy
from rfq_engine.store.witness import read_witness
from tests.faults.pgkit import PgDatabase
from tests.ha.test_fencing import kill_lock_session
from tests.store.audit_tamper import COLUMNS, SqlTamper

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFQ_AUDIT_CHECKPOINT_KEY", "witnessed-heads-test-key")


def engine_store(db: PgDatabase, root: Path, candidate: Candidate) -> SqlAuditStore:
    """An engine's store: its own checkpoint log, the witness both engines share."""
    return SqlAuditStore(db.url, checkpoint_path=root / f"{candidate.name}.head",
                         witness=root / "witness.jsonl", candidate=candidate,
                         retry=RetryPolicy(max_delay_s=0.1, give_up_after_s=5,
                                           close_grace_s=1, probe_interval_s=None))


async def lead(db: PgDatabase, root: Path, candidate: Candidate) -> SqlAuditStore:
    store = engine_store(db, root, candidate)
    with leading_as(candidate):
        await store.open()
    return store


async def append_rfq(store: SqlAuditStore, rfq_id: str, events: int) -> None:
    for i in range(events):
        await store.append(rfq_id, "rfq.state_changed", "engine", {"i": i})


async def verify_with(db: PgDatabase, root: Path, log: str) -> tuple[bool, int | None, str, tuple[str, ...]]:
    reader = SqlAuditStore(db.url, checkpoint_path=root / f"{log}.head",
                           witness=root / "witness.jsonl", readonly=True)
    await reader.open()
    try:
        report = await reader.verify()
    finally:
        await reader.close()
    return report.ok, report.first_bad_seq, str(report.problem), report.notes


def entries(root: Path, name: str) -> list[Entry]:
    state = read_log(root / f"{name}.head")
    assert state is not None and state.problem is None
    return list(state.entries)


def rehash(row: tuple[Any, ...], prev: str, payload: str) -> tuple[Any, ...]:
    """The row with another payload, linked to ``prev`` and hashed correctly."""
    values = dict(zip(COLUMNS, row, strict=True))
    values.update(payload=payload, prev_hash=prev)
    values["hash"] = chain_hash(prev, values["seq"], values["ts"], values["rfq_id"],
                                values["type"], values["actor"], payload)
    return tuple(values.values())


async def fail_over(db: PgDatabase, root: Path, old: SqlAuditStore) -> SqlAuditStore:
    """engine-b (waiting) takes the lead when engine-a's lock session dies; engine-a's next
    batch is fenced (announced in its log, never committed)."""
    opening = asyncio.ensure_future(lead(db, root, Candidate("engine-b", poll_s=0.05)))
    await asyncio.sleep(0.2)  # engine-b is polling for the lock
    await kill_lock_session(db)
    new = await asyncio.wait_for(opening, 10)
    with pytest.raises(StoreError):
        await old.append("rfq-late", "rfq.submitted", "engine", {"late": True})
    await old.close()
    return new


async def three_terms(db: PgDatabase, root: Path) -> None:
    """engine-a leads (epoch 1) and is failed over; engine-b (epoch 2) leads and stops;
    engine-a leads again (epoch 3). 5 + 4 + 3 events."""
    a = await lead(db, root, Candidate("engine-a", wait=False))
    await append_rfq(a, "rfq-1", 5)
    b = await fail_over(db, root, a)
    await append_rfq(b, "rfq-2", 4)
    await b.close()
    again = await lead(db, root, Candidate("engine-a", poll_s=0.05))
    await append_rfq(again, "rfq-3", 3)
    await again.close()


async def test_heads_of_every_epoch_verify_from_either_engines_log(
        db: PgDatabase, tmp_path: Path) -> None:
    await three_terms(db, tmp_path)
    a_log, b_log = entries(tmp_path, "engine-a"), entries(tmp_path, "engine-b")
    leads_a = [(e.seq, e.epoch) for e in a_log if e.kind == LEAD]
    assert leads_a == [(0, 1), (9, 3)], "each term opens at the head it adopted"
    assert [(e.kind, e.seq, e.epoch) for e in b_log if e.kind == LEAD] == [(LEAD, 5, 2)]
    assert all(e.engine == "engine-a" for e in a_log) and all(e.engine == "engine-b" for e in b_log)
    fenced = [e for e in a_log if e.kind == INTENT and e.epoch == 1][-1]
    assert fenced.seq == 6, "engine-a's fenced batch was announced and never committed"
    witnessed = read_witness(tmp_path / "witness.jsonl")
    assert {(w.engine, w.epoch) for w in witnessed} == {("engine-a", 1), ("engine-b", 2),
                                                        ("engine-a", 3)}
    assert max(w.seq for w in witnessed) == 12
    for name in ("engine-a", "engine-b"):
        ok, _, problem, notes = await verify_with(db, tmp_path, name)
        assert ok, (name, problem)
    ok, _, _, notes = await verify_with(db, tmp_path, "engine-b")
    assert any("events 10..12 were written after engine-b's epoch 2" in n for n in notes), notes
    # the old leader's log read alone, before engine-a came back: rows 6..9 are epoch 2's
    last_b = [e for e in b_log if e.kind == DONE][-1]
    assert last_b.seq == 9


async def test_a_truncation_with_an_older_log_put_back_names_the_witnessed_seq(
        db: PgDatabase, tmp_path: Path) -> None:
    """The promoted primary's log loses its newest RFQ (seqs 10..12, engine-a's epoch 3),
    and engine-a's checkpoint log is put back as it was before that term: the log and the
    rows agree, the witness does not."""
    a = await lead(db, tmp_path, Candidate("engine-a", wait=False))
    await append_rfq(a, "rfq-1", 5)
    b = await fail_over(db, tmp_path, a)
    await append_rfq(b, "rfq-2", 4)
    await b.close()
    shutil.copy(tmp_path / "engine-a.head", tmp_path / "engine-a.head.before")
    again = await lead(db, tmp_path, Candidate("engine-a", poll_s=0.05))
    await append_rfq(again, "rfq-3", 3)
    await again.close()
    assert (await verify_with(db, tmp_path, "engine-a"))[0]
    conn = await asyncpg.connect(db.dsn, timeout=5)
    try:
        await conn.execute("DELETE FROM audit_events WHERE seq > 9")
    finally:
        await conn.close()
    os.replace(tmp_path / "engine-a.head.before", tmp_path / "engine-a.head")
    for name in ("engine-a", "engine-b"):
        ok, first_bad, problem, _ = await verify_with(db, tmp_path, name)
        assert not ok and first_bad == 10, (name, problem)
        assert "the witness" in problem and "saw seq 12" in problem, problem
        assert "engine-a at epoch 3" in problem, problem
    with pytest.raises(StoreError, match=r"refusing to write: .*saw seq 12"):
        await lead(db, tmp_path, Candidate("engine-b", poll_s=0.05))


async def test_a_term_whose_adopted_head_was_rewritten_fails_at_that_seq(
        db: PgDatabase, tmp_path: Path) -> None:
    """The row a term adopted (its ``lead`` entry's seq) edited and the chain recomputed
    after it: the lead entry no longer matches."""
    a = await lead(db, tmp_path, Candidate("engine-a", wait=False))
    await append_rfq(a, "rfq-1", 5)
    b = await fail_over(db, tmp_path, a)
    await append_rfq(b, "rfq-2", 2)
    await b.close()
    tamper = SqlTamper("postgres", db.dsn)
    rows = await tamper.rows()
    prev, rewritten = rows[3][7], []
    for row in rows[4:]:  # seq 5 on, edited and rehashed consistently
        rewritten.append(rehash(row, prev, '{"i":99}' if row[0] == 5 else row[5]))
        prev = rewritten[-1][7]
    await tamper.delete(*range(5, len(rows) + 1))
    for row in rewritten:
        await tamper.insert(row)
    ok, first_bad, problem, _ = await verify_with(db, tmp_path, "engine-b")
    assert not ok and first_bad == 5 and "engine-b adopted at epoch 2" in problem, problem


async def test_rows_added_while_nobody_led_are_refused_by_the_next_term(
        db: PgDatabase, tmp_path: Path) -> None:
    """engine-a stops (epoch 1); a row with a correct hash is appended behind its back; the
    next leader is engine-a again at epoch 2, so no other term wrote anything between: the
    row is not covered, and it refuses to lead on top of it."""
    a = await lead(db, tmp_path, Candidate("engine-a", wait=False))
    await append_rfq(a, "rfq-1", 3)
    await a.close()
    tamper = SqlTamper("postgres", db.dsn)
    last = (await tamper.rows())[-1]
    forged = rehash((last[0] + 1, *last[1:6], last[7], ""), last[7], '{"forged":true}')
    await tamper.insert(forged)
    with pytest.raises(StoreError, match=r"events 4\.\.4 are not covered"):
        await lead(db, tmp_path, Candidate("engine-a", wait=False))


async def test_an_engine_whose_log_was_deleted_refuses_to_lead(
        db: PgDatabase, tmp_path: Path) -> None:
    """The witness holds engine-a's entries; its log is gone when it takes the lead again
    (after engine-b's term): it must not start a fresh log as if it were a new engine."""
    a = await lead(db, tmp_path, Candidate("engine-a", wait=False))
    await append_rfq(a, "rfq-1", 3)
    b = await fail_over(db, tmp_path, a)
    await b.close()
    (tmp_path / "engine-a.head").unlink()
    with pytest.raises(StoreError, match="lacks the witnessed entry"):
        await lead(db, tmp_path, Candidate("engine-a", wait=False))
