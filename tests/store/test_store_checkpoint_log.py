"""The checkpoint log against the attacks of issue 15 (defect 5) and a writer's refusal to
extend a broken chain (defect 4): direct SQL and file edits, then the next writer and
``verify``."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from audit_backends import Backend
from audit_samples import lifecycle
from test_store_tamper import N, assert_bad, rehash, verify, written

from rfq_engine.store import StoreError, StoreState
from rfq_engine.store.outage import RetryPolicy

RUNBOOK = "runbooks/audit-chain-broken.md"


async def test_writer_refuses_a_chain_broken_in_the_middle(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.update(7, actor="mallory")
    with pytest.raises(StoreError) as refused:
        await sql_backend.open()
    assert "seq 7" in str(refused.value) and RUNBOOK in str(refused.value)
    assert len(await tamper.rows()) == N  # nothing appended


async def test_forged_tail_row_with_a_correct_hash_is_not_adopted(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    last = (await tamper.rows())[-1]
    forged = rehash(last, last[7], seq=N + 1, type="fill.recorded", actor="mallory",
                    payload='{"forged":true}')
    await tamper.insert(forged)
    report = await verify(sql_backend)
    assert_bad(report, N + 1, "not covered by the checkpoint")
    with pytest.raises(StoreError) as refused:
        await sql_backend.open()
    assert f"seq {N + 1}" in str(refused.value) and RUNBOOK in str(refused.value)
    assert len(await tamper.rows()) == N + 1  # the writer appended nothing after it


async def test_rollback_to_an_older_genuine_checkpoint_is_caught_by_the_witness(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Truncate the log by one whole RFQ and put back the checkpoint log as it was before
    that RFQ: consistent on this host, but the witness saw the later head."""
    monkeypatch.setenv("RFQ_AUDIT_CHECKPOINT_KEY", "k1")
    witness = sql_backend.head.with_name("witness.jsonl")
    store = await sql_backend.open(witness=witness)
    await lifecycle(store, "r1")
    await store.flush()
    saved = sql_backend.head.with_name("saved.head")
    shutil.copy2(sql_backend.head, saved)
    before = (await store.verify()).head_seq
    await lifecycle(store, "r2", client_rfq_id="c-2")
    await store.close()
    tamper = sql_backend.tamper()
    await tamper.delete(*range(before + 1, before + 10))
    shutil.copy2(saved, sql_backend.head)
    report = await verify(sql_backend)
    assert report.ok, "without the witness the rollback is consistent (documented limit)"
    reader = await sql_backend.open(readonly=True, witness=witness)
    report = await reader.verify()
    assert not report.ok and report.problem is not None
    assert "witness" in report.problem and report.first_bad_seq == before + 1, report.problem
    lines = [json.loads(line) for line in witness.read_text().splitlines()]
    assert lines and lines[-1]["seq"] == before + 9


async def test_events_whose_entries_a_power_cut_lost_are_adopted_only_by_a_person(
        sql_backend: Backend) -> None:
    store = await sql_backend.open()
    await lifecycle(store, "r1")
    await store.close()
    lines = sql_backend.head.read_bytes().splitlines(keepends=True)
    sql_backend.head.write_bytes(b"".join(lines[:-4]))  # the log's newest entries never hit the disk
    report = await verify(sql_backend)
    assert not report.ok and "not covered by the checkpoint log" in (report.problem or "")
    with pytest.raises(StoreError, match="not covered"):
        await sql_backend.open()  # no writer adopts them by itself
    with pytest.raises(StoreError, match="not up to"):
        await sql_backend.build().adopt_tail(report.head_seq - 1, "carol")
    first, last = await sql_backend.build().adopt_tail(report.head_seq, "carol")
    assert (first, last) == (report.first_bad_seq, report.head_seq)
    report = await verify(sql_backend)
    assert report.ok and any("adopted by carol" in note for note in report.notes), report
    with pytest.raises(StoreError, match="nothing to adopt"):
        await sql_backend.build().adopt_tail(report.head_seq, "carol")
    writer = await sql_backend.open()
    assert (await writer.append("r1", "test.x", "engine", {})).seq == report.head_seq + 1


async def test_adopt_tail_refuses_any_other_damage(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.update(3, actor="mallory")
    with pytest.raises(StoreError, match="refusing to adopt: seq 3"):
        await sql_backend.build().adopt_tail(N, "carol")


async def test_rows_appended_behind_a_running_writer_fence_it(sql_backend: Backend) -> None:
    """A DBA appends a row with a correct hash while the writer idles: its probe sees a head
    it did not write, and it stops rather than write on top of it."""
    store = await sql_backend.open(retry=RetryPolicy(probe_interval_s=0.05))
    await lifecycle(store, "r1")
    last = (await sql_backend.tamper().rows())[-1]
    await sql_backend.tamper().insert(rehash(last, last[7], seq=last[0] + 1, actor="mallory"))
    for _ in range(100):
        if store.health.state is StoreState.STOPPED:
            break
        await asyncio.sleep(0.02)
    assert store.health.state is StoreState.STOPPED
    assert "head moved under this writer" in (store.health.error or "")
    with pytest.raises(StoreError, match="stopped"):
        store.append("r1", "test.x", "engine", {})
