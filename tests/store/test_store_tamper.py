"""Tamper detection: direct SQL against SQLite and PostgreSQL, then ``verify`` names the seq.

Every case writes the same 20-event chain through the store, closes it, edits the database
behind its back, and verifies with a read-only store (as ``rfq audit verify`` would).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from audit_backends import Backend
from audit_samples import lifecycle
from audit_tamper import SqlTamper

from rfq_engine.domain import format_ts, parse_ts
from rfq_engine.store import GENESIS_HASH, StoreError, VerifyReport, chain_hash

N = 20


async def written(backend: Backend) -> SqlTamper:
    store = await backend.open()
    await lifecycle(store, "r1")
    await lifecycle(store, "r2", client_rfq_id="c-2")
    for i in range(N - 18):
        await store.append(None, "engine.tick", "engine", {"i": i})
    assert (await store.verify()).ok
    await store.close()
    tamper = backend.tamper()
    assert len(await tamper.rows()) == N
    return tamper


async def verify(backend: Backend) -> VerifyReport:
    reader = await backend.open(readonly=True)
    return await reader.verify()


def rehash(row: tuple, prev: str, **changes: object) -> tuple:
    """The row with ``changes`` applied, linked to ``prev`` and hashed correctly."""
    values = dict(zip(("seq", "ts", "rfq_id", "type", "actor", "payload", "prev_hash", "hash"),
                      row, strict=True))
    values.update(changes, prev_hash=prev)
    values["hash"] = chain_hash(prev, values["seq"], values["ts"], values["rfq_id"],
                                values["type"], values["actor"], values["payload"])
    return tuple(values.values())


def assert_bad(report: VerifyReport, seq: int, *phrases: str) -> None:
    assert not report.ok
    assert report.first_bad_seq == seq, report.problem
    assert report.problem is not None
    for phrase in phrases:
        assert phrase in report.problem, report.problem


async def test_untouched_chain_verifies(sql_backend: Backend) -> None:
    await written(sql_backend)
    report = await verify(sql_backend)
    assert report.ok and report.events == N and report.checkpoint_seq == N


async def test_edited_payload(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    row = (await tamper.rows())[6]
    payload = json.loads(row[5])
    payload["notional"] = "1"
    await tamper.update(7, payload=json.dumps(payload, sort_keys=True, separators=(",", ":")))
    assert_bad(await verify(sql_backend), 7, "seq 7: hash does not match its contents (row edited)")


async def test_edited_ts_and_actor(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    row = (await tamper.rows())[8]
    await tamper.update(9, ts=format_ts(parse_ts(row[1], "ts") + timedelta(microseconds=1)))
    assert_bad(await verify(sql_backend), 9, "seq 9:", "row edited")
    await tamper.update(9, ts=row[1])
    assert (await verify(sql_backend)).ok
    await tamper.update(4, actor="mallory")
    assert_bad(await verify(sql_backend), 4, "seq 4:", "row edited")


async def test_edited_hash(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.update(12, hash="f" * 64)
    assert_bad(await verify(sql_backend), 12, "seq 12: hash does not match its contents")


async def test_forged_row_inserted_in_the_middle(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    rows = await tamper.rows()
    await tamper.shift_up(10)
    forged = rehash(rows[9], rows[8][7], seq=10, actor="mallory", payload='{"forged":true}')
    await tamper.insert(forged)
    report = await verify(sql_backend)
    assert_bad(report, 11, "seq 11: prev_hash does not match seq 10 (row inserted or reordered)")


async def test_forged_row_appended_with_a_made_up_hash(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    last = (await tamper.rows())[-1]
    await tamper.insert((N + 1, last[1], None, "engine.tick", "engine", "{}", last[7], "0" * 64))
    assert_bad(await verify(sql_backend), N + 1, f"seq {N + 1}: hash does not match")


async def test_rows_swapped(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    rows = await tamper.rows()
    await tamper.delete(5, 6)
    await tamper.insert((5, *rows[5][1:]))
    await tamper.insert((6, *rows[4][1:]))
    assert_bad(await verify(sql_backend), 5, "seq 5: prev_hash does not match seq 4")


async def test_deleted_middle_row(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.delete(8)
    assert_bad(await verify(sql_backend), 8, "seq 8 missing (row deleted or sequence gap)")


async def test_deleted_first_row(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.delete(1)
    assert_bad(await verify(sql_backend), 1, "seq 1 missing")


async def test_deleted_newest_rows_are_caught_by_the_checkpoint(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.delete(18, 19, 20)
    report = await verify(sql_backend)
    assert_bad(report, 18, "events after seq 17 were deleted")
    assert report.checkpoint_seq == N and report.head_seq == 17


async def test_everything_deleted_is_caught_by_the_checkpoint(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.delete(*range(1, N + 1))
    assert_bad(await verify(sql_backend), 1, "events after seq 0 were deleted")


async def test_consistent_rewrite_is_caught_by_the_checkpoint_hash(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    prev, rewritten = GENESIS_HASH, []
    for row in await tamper.rows():  # rewrite the whole chain, from seq 1, consistently
        payload = '{"rewritten":true}' if row[0] == 1 else row[5]
        rewritten.append(rehash(row, prev, payload=payload))
        prev = rewritten[-1][7]
    await tamper.delete(*range(1, N + 1))
    for row in rewritten:
        await tamper.insert(row)
    report = await verify(sql_backend)
    assert_bad(report, N, f"seq {N}: hash differs from the checkpoint", "chain rewritten")


async def test_writer_refuses_to_extend_a_chain_that_lost_its_tail(sql_backend: Backend) -> None:
    tamper = await written(sql_backend)
    await tamper.delete(20)
    with pytest.raises(StoreError, match="refusing to write: events after seq 19 were deleted"):
        await sql_backend.open()
    assert_bad(await verify(sql_backend), 20, "deleted")  # and nothing was appended


async def test_missing_checkpoint_file_is_a_problem(sql_backend: Backend) -> None:
    await written(sql_backend)
    sql_backend.head.unlink()
    report = await verify(sql_backend)
    assert not report.ok and report.first_bad_seq is None
    assert report.problem is not None and "is missing" in report.problem
    with pytest.raises(StoreError, match="is missing"):
        await sql_backend.open()


async def test_forged_checkpoint_fails_its_mac(
    sql_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RFQ_AUDIT_CHECKPOINT_KEY", "k1")
    tamper = await written(sql_backend)
    rows = await tamper.rows()
    await tamper.delete(19, 20)
    # The attacker rewrites the checkpoint to the shortened head but has no key.
    sql_backend.head.write_text(json.dumps({"seq": 18, "hash": rows[17][7], "mac": "0" * 64}))
    report = await verify(sql_backend)
    assert not report.ok and report.problem is not None
    assert "MAC does not verify" in report.problem
    monkeypatch.setenv("RFQ_AUDIT_CHECKPOINT_KEY", "k2")  # the wrong key looks the same
    assert "MAC does not verify" in ((await verify(sql_backend)).problem or "")
