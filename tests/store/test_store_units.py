"""The pure pieces: fast hashing, chain verifier, checkpoint file, projection rules."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import tempfile
from dataclasses import astuple
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from audit_samples import TS, award, confirmed, exec_rejected, fill, quote, ranked, state, submitted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfq_engine.domain import format_ts
from rfq_engine.store import (
    GENESIS_HASH,
    AuditEvent,
    EventType,
    InMemoryAuditStore,
    SqlAuditStore,
    chain_hash,
    read_checkpoint,
    write_checkpoint,
)
from rfq_engine.store.chain import ChainVerifier, link_hash, ts_text
from rfq_engine.store.checkpoint import (
    Checkpoint,
    CheckpointError,
    CheckpointLog,
    LogState,
    compute_mac,
    read_log,
)
from rfq_engine.store.projection import Tables, apply_change, changes_for

E = EventType
texts = st.text(st.characters(codec="utf-8"), max_size=20)
utc_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)


@given(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
       st.integers(min_value=1, max_value=2**62), utc_times, st.none() | texts, texts, texts,
       texts)
def test_link_hash_is_chain_hash(prev: str, seq: int, ts: datetime, rfq_id: str | None,
                                 type_: str, actor: str, payload: str) -> None:
    assert link_hash(prev, seq, format_ts(ts), rfq_id, type_, actor, payload) == chain_hash(
        prev, seq, ts, rfq_id, type_, actor, payload
    )


@given(utc_times)
def test_ts_text_is_format_ts(ts: datetime) -> None:
    assert ts_text(ts) == format_ts(ts)
    assert ts_text(ts.replace(microsecond=0)) == format_ts(ts.replace(microsecond=0))


def chain(n: int) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        ts = format_ts(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seq))
        payload = json.dumps({"i": seq})
        digest = chain_hash(prev, seq, ts, "r1", "t", "a", payload)
        rows.append((seq, ts, "r1", "t", "a", payload, prev, digest))
        prev = digest
    return rows


@given(st.lists(st.integers(min_value=0, max_value=30), max_size=6), st.integers(0, 29))
def test_verifier_result_does_not_depend_on_paging(cuts: list[int], bad: int) -> None:
    rows = chain(30)
    rows[bad] = (*rows[bad][:5], '{"i":-1}', *rows[bad][6:])
    bounds = [0, *sorted(cuts), 30]
    verifier = ChainVerifier(watch_seq=15)
    for lo, hi in itertools.pairwise(bounds):
        verifier.feed(rows[lo:hi])
    assert (verifier.first_bad_seq, verifier.count, verifier.head_seq) == (bad + 1, bad, bad)
    assert verifier.problem == f"seq {bad + 1}: hash does not match its contents (row edited)"
    assert verifier.watched_hash == (rows[14][7] if bad > 14 else None)


def test_verifier_names_gaps_links_and_unreadable_rows() -> None:
    rows = chain(5)
    v = ChainVerifier()
    assert not v.feed([rows[0], rows[2]])
    assert (v.first_bad_seq, v.problem) == (2, "seq 2 missing (row deleted or sequence gap)")
    v = ChainVerifier()
    assert not v.feed([rows[0], (2, *rows[1][1:6], "0" * 64, rows[1][7])])
    assert v.first_bad_seq == 2 and "prev_hash does not match seq 1" in (v.problem or "")
    v = ChainVerifier()
    assert not v.feed([rows[0], (2, None, *rows[1][2:])])
    assert v.first_bad_seq == 2 and "unreadable" in (v.problem or "")
    v = ChainVerifier()
    assert v.feed(rows) and (v.count, v.head_seq, v.head_hash) == (5, 5, rows[4][7])


def test_checkpoint_file_round_trip_and_mac(tmp_path: Path) -> None:
    path = tmp_path / "a.head"
    assert read_checkpoint(path) is None
    cp = write_checkpoint(path, 7, "ab" * 32, None)
    assert read_checkpoint(path) == cp and cp.mac == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.head"]  # no temp file left
    keyed = write_checkpoint(path, 8, "cd" * 32, b"k")
    assert len(keyed.mac) == 64 and read_checkpoint(path) == keyed
    assert (read_log(path, b"k") or LogState()).problem is None
    assert "MAC does not verify" in ((read_log(path, b"other") or LogState()).problem or "")
    assert (read_log(path, None) or LogState()).problem is None  # nothing to check without a key
    old = Checkpoint(8, "cd" * 32, compute_mac(b"k", 8, "cd" * 32))  # the previous format's MAC
    assert CheckpointLog(path, b"k").mac_ok(old) and not CheckpointLog(path, b"other").mac_ok(old)
    assert CheckpointLog(path, None).mac_ok(old)
    path.write_text("")
    assert read_checkpoint(path) is None  # an empty file names no head (verify: a finding)
    for junk in ("{}", '{"seq": "1", "hash": "x"}', '{"seq": -1, "hash": "x"}', "[1]"):
        path.write_text(junk)
        with pytest.raises(CheckpointError):
            read_checkpoint(path)


def event(type_: str, payload: dict[str, Any], rfq_id: str | None = "r1", seq: int = 1) -> AuditEvent:
    text = json.dumps(payload)
    ts = datetime(2026, 11, 21, 10, 0, seq, tzinfo=UTC)
    return AuditEvent(seq, ts, rfq_id, type_, "engine", text, GENESIS_HASH, "0" * 64)


def test_projection_rules_in_isolation() -> None:
    t = Tables()
    for i, (type_, payload) in enumerate([
        (E.RFQ_SUBMITTED, submitted()),
        (E.RFQ_SUBMITTED, submitted(notional="5")),  # replayed: first one wins
        (E.RFQ_STATE_CHANGED, state("created", "open", "ok")),
        (E.QUOTE_RECEIVED, quote("d1", "q1")),
        (E.QUOTES_RANKED, ranked([("d1", "q1"), ("d9", "q9")])),  # q9 unknown: ignored
        (E.AWARD_DECIDED, award("x1", "d1", "q1")),
        (E.EXECUTION_REJECTED, exec_rejected("x1", "d1", "timeout")),
        (E.FILL_RECORDED, fill("f1", "x1", "d1", quantity="3")),
        (E.FILL_RECORDED, fill("f1", "x1", "d1", quantity="3")),  # replayed: counted once
        (E.EXECUTION_CONFIRMED, confirmed("x2", "d2")),  # unknown award: ignored
    ], 1):
        for change in changes_for(event(type_, payload, seq=i)):
            apply_change(t, change)
    rfq = t.rfqs["r1"]
    assert (rfq.state, rfq.reason, rfq.notional, rfq.filled_quantity) == (
        "open", "ok", Decimal(1000000), Decimal(3)
    )
    assert rfq.updated_at == datetime(2026, 11, 21, 10, 0, 3, tzinfo=UTC)
    assert [(q.quote_id, q.status, q.rank) for q in t.quotes.values()] == [("q1", "valid", 1)]
    assert (t.awards["x1"].status, t.awards["x1"].reason) == ("rejected", "timeout")
    assert list(t.fills) == ["f1"] and "x2" not in t.awards


@pytest.mark.parametrize("type_,payload", [
    (E.RFQ_SUBMITTED, {"spec": "nope", "notional": "1"}),
    (E.RFQ_SUBMITTED, submitted(notional="abc")),
    (E.QUOTE_RECEIVED, {"dealer_id": "d1"}),
    (E.QUOTE_RECEIVED, quote("d1", "q1", ask="1e")),
    (E.AWARD_DECIDED, {**award("x", "d", "q"), "confirm_by": "tomorrow"}),
    (E.FILL_RECORDED, {**fill("f", "x", "d"), "last_date": "2026-13-01"}),
    (E.RFQ_STATE_CHANGED, {"from": "created"}),
    (E.MANDATE_CHECKED, {"stage": "pre_trade", "passed": True, "verdicts": []}),
])
def test_malformed_or_unprojected_events_change_nothing(type_: str, payload: dict[str, Any]) -> None:
    assert changes_for(event(type_, payload)) == []


# --- memory and SQLite project identically ----------------------------------------------------

RFQS, DEALERS, QUOTES = ("r1", "r2"), ("d1", "d2"), ("q1", "q2")
ops = st.one_of(
    st.tuples(st.just(E.RFQ_SUBMITTED), st.sampled_from(RFQS), st.builds(
        submitted, notional=st.sampled_from(["1", "2.50"]), client_rfq_id=st.sampled_from(["a", "b"]))),
    st.tuples(st.just(E.RFQ_STATE_CHANGED), st.sampled_from(RFQS), st.builds(
        state, st.just("created"), st.sampled_from(["open", "filled"]), st.sampled_from(["", "x"]))),
    st.tuples(st.just(E.QUOTE_RECEIVED), st.sampled_from(RFQS), st.builds(
        quote, st.sampled_from(DEALERS), st.sampled_from(QUOTES), ask=st.sampled_from(["1", "1.5"]))),
    st.tuples(st.just(E.QUOTE_REJECTED), st.sampled_from(RFQS), st.fixed_dictionaries({
        "dealer_id": st.sampled_from(DEALERS), "quote_id": st.sampled_from(QUOTES),
        "reason": st.sampled_from(["late", "bad"]), "received_at": st.just(TS)})),
    st.tuples(st.just(E.QUOTES_RANKED), st.sampled_from(RFQS), st.builds(
        ranked, st.lists(st.tuples(st.sampled_from(DEALERS), st.sampled_from(QUOTES)), max_size=2),
        st.lists(st.tuples(st.sampled_from(DEALERS), st.sampled_from(QUOTES), st.just("r")), max_size=1))),
    st.tuples(st.just(E.AWARD_DECIDED), st.sampled_from(RFQS), st.builds(
        award, st.sampled_from(["x1", "x2"]), st.sampled_from(DEALERS), st.sampled_from(QUOTES))),
    st.tuples(st.just(E.EXECUTION_CONFIRMED), st.sampled_from(RFQS), st.builds(
        confirmed, st.sampled_from(["x1", "x2"]), st.just("d1"))),
    st.tuples(st.just(E.EXECUTION_REJECTED), st.sampled_from(RFQS), st.builds(
        exec_rejected, st.sampled_from(["x1", "x2"]), st.just("d1"), st.just("no"))),
    st.tuples(st.just(E.FILL_RECORDED), st.sampled_from(RFQS), st.builds(
        fill, st.sampled_from(["f1", "f2", "f3"]), st.just("x1"), st.sampled_from(DEALERS),
        quantity=st.sampled_from(["1", "0.25"]), last_date=st.sampled_from([None, "2026-12-01"]))),
)


def snapshot_rows(rows: list[Any]) -> list[tuple[Any, ...]]:
    """Rows by key, without the fields taken from event timestamps (each store has its own
    clock); values compare as values (Decimal("2.50") == Decimal("2.5"))."""
    drop = {"created_at", "updated_at", "filled_at"}
    out = [
        tuple(v for k, v in zip(row.__slots__, astuple(row), strict=True) if k not in drop)
        for row in rows
    ]
    return sorted(out, key=lambda values: values[0])


async def project_both(events: list[tuple[str, str, dict[str, Any]]], directory: str) -> None:
    memory = InMemoryAuditStore(batch_max=7)
    sqlite = SqlAuditStore(f"sqlite+aiosqlite:///{directory}/p.db", batch_max=7,
                           checkpoint_path=None, sqlite_synchronous="OFF")
    async with memory, sqlite:
        for store in (memory, sqlite):
            for type_, rfq_id, payload in events:
                store.append(rfq_id, type_, "engine", payload)
            await store.flush()
        assert snapshot_rows(await memory.rfqs()) == snapshot_rows(await sqlite.rfqs())
        assert snapshot_rows(await memory.fills()) == snapshot_rows(await sqlite.fills())
        for rfq_id in RFQS:
            assert await memory.quotes(rfq_id) == await sqlite.quotes(rfq_id)
            assert await memory.awards(rfq_id) == await sqlite.awards(rfq_id)
        for kw in ({}, {"dealer_id": "d1"}, {"open_on": datetime(2026, 12, 2).date()}):
            assert await memory.filled_notional(**kw) == await sqlite.filled_notional(**kw)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=40))
def test_memory_and_sqlite_project_the_same_rows(events: list[tuple[str, str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(project_both(events, directory))


def test_checkpoint_log_appends_and_reads_torn_edited_and_cut_logs(tmp_path: Path) -> None:
    path = tmp_path / "audit.head"
    log = CheckpointLog(path, b"k")
    log.resume(None)
    log.done_sync(0, GENESIS_HASH)  # the first entry creates the file atomically
    inode = os.stat(path).st_ino
    log.intent_sync(1, "a" * 64)
    log.intent_sync(1, "a" * 64)  # a retried batch is announced once
    log.done_sync(1, "a" * 64)
    log.done_sync(1, "a" * 64)  # and recorded once
    assert os.stat(path).st_ino == inode  # appended, never replaced
    state = read_log(path, b"k")
    assert state is not None and state.problem is None
    assert [(e.n, e.kind, e.seq) for e in state.entries] == [(1, "done", 0), (2, "intent", 1),
                                                             (3, "done", 1)]
    assert [e.prev for e in state.entries[1:]] == [e.link for e in state.entries[:-1]]
    good = path.read_bytes()
    path.write_bytes(good + b'{"check":"x')  # a crash tore the last append: ignored
    state = read_log(path, b"k")
    assert state is not None and state.torn and state.problem is None and state.entries[-1].n == 3
    resumed = CheckpointLog(path, b"k")  # the next writer sets the torn line aside
    resumed.resume(read_log(path, b"k"))
    resumed.done_sync(2, "b" * 64)
    resumed.close()
    state = read_log(path, b"k")
    assert state is not None and not state.torn and state.problem is None and not state.skipped
    assert [e.n for e in state.entries] == [1, 2, 3, 4]
    path.write_bytes(good.replace(b'"seq":1', b'"seq":2', 1))  # an edited entry
    edited = read_log(path, b"k") or LogState()
    assert edited.skipped == (2,) and "entry 3 follows entry 1" in (edited.problem or "")
    lines = good.splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])  # an entry removed from the middle
    assert "entry 3 follows entry 1" in ((read_log(path, b"k") or LogState()).problem or "")
    path.write_bytes(lines[1] + lines[2])  # the start cut off
    assert "starts at entry 2" in ((read_log(path, b"k") or LogState()).problem or "")
    path.write_bytes(good)
    path.unlink()  # deleted behind the writer's back: it appends to a new file, and the gap shows
    log.done_sync(2, "b" * 64)
    assert "starts at entry 4" in ((read_log(path, b"k") or LogState()).problem or "")
    log.close()
    path.write_text(json.dumps({"seq": 5, "hash": "d" * 64, "mac": ""}))  # the oldest format
    old = read_checkpoint(path)
    assert old is not None and old.seq == 5
