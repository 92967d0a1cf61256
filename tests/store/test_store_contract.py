"""The AuditStore contract, run on the memory store, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from audit_backends import Backend
from audit_samples import (
    award,
    confirmed,
    exec_rejected,
    fill,
    lifecycle,
    quote,
    ranked,
    state,
    submitted,
)

from rfq_engine.domain import canonical_json
from rfq_engine.store import (
    GENESIS_HASH,
    AuditEvent,
    AuditStore,
    EventFilter,
    EventType,
    StoreError,
    chain_hash,
    read_checkpoint,
)

E = EventType


def assert_chained(events: list[AuditEvent]) -> None:
    prev = GENESIS_HASH
    for n, event in enumerate(events, 1):
        assert event.seq == n
        assert event.prev_hash == prev
        assert event.hash == chain_hash(
            prev, event.seq, event.ts, event.rfq_id, event.type, event.actor, event.payload_json
        )
        prev = event.hash


async def test_append_resolves_with_the_stored_chained_event(backend: Backend) -> None:
    store = await backend.open()
    event = await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted(notional="12.50"))
    assert (event.seq, event.prev_hash, event.rfq_id, event.actor) == (1, GENESIS_HASH, "r1", "alice")
    assert event.payload["notional"] == "12.50"
    assert event.ts.tzinfo is not None
    assert await store.events() == [event]
    assert store.queue_depth == 0
    assert_chained([event])


async def test_seq_is_contiguous_and_every_hash_links(backend: Backend) -> None:
    store = await backend.open()
    awaited = [await store.append("r1", "test.awaited", "engine", {"i": i}) for i in range(5)]
    fired = [store.append(None if i % 3 else "r2", "test.fired", "engine", {"i": i})
             for i in range(40)]
    await store.flush()
    assert all(f.done() for f in fired)
    events = await store.events()
    assert events[:5] == awaited
    assert [f.result() for f in fired] == events[5:]
    assert_chained(events)
    report = await store.verify()
    assert report.ok, report.problem
    assert (report.events, report.head_seq, report.head_hash) == (45, 45, events[-1].hash)


async def test_flush_waits_for_fire_and_forget_appends(backend: Backend) -> None:
    store = await backend.open()
    futures = [store.append("r1", "test.fired", "engine", {"i": i}) for i in range(100)]
    assert store.queue_depth == 100  # the writer has not run yet
    await store.flush()
    assert store.queue_depth == 0
    assert [f.result().seq for f in futures] == list(range(1, 101))


async def test_caller_errors_raise_at_once(backend: Backend) -> None:
    store = await backend.open()
    with pytest.raises(TypeError, match="float"):
        store.append("r1", "test.bad", "engine", {"price": 1.5})
    with pytest.raises(ValueError, match="type"):
        store.append("r1", "", "engine", {})
    with pytest.raises(ValueError, match="actor"):
        store.append("r1", "test.x", "", {})
    assert (await store.append("r1", "test.ok", "engine", {"price": Decimal("1.50")})).seq == 1
    await store.close()
    with pytest.raises(StoreError):
        store.append("r1", "test.late", "engine", {})


async def test_payload_is_stored_as_canonical_json(backend: Backend) -> None:
    store = await backend.open()
    payload = {
        "z": Decimal("1.50"), "a": [Decimal("1E+3"), {"b": None, "a": True}], "é": "naïve \"q\"",
        "at": datetime(2026, 11, 21, 10, 0, tzinfo=UTC), "day": date(2026, 12, 25),
        "type": E.FILL_RECORDED, "n": 3,
    }
    event = await store.append("r1", "test.x", "engine", payload)
    assert event.payload_json == canonical_json(payload)
    assert event.payload["z"] == "1.5" and event.payload["at"] == "2026-11-21T10:00:00.000000Z"
    with pytest.raises(TypeError):
        store.append("r1", "test.x", "engine", {"nested": [{"price": float("nan")}]})
    with pytest.raises(TypeError):
        store.append("r1", "test.x", "engine", {"obj": object()})


async def test_event_filters(backend: Backend) -> None:
    store = await backend.open()
    for i in range(12):
        rfq = ("r1", "r2", None)[i % 3]
        await store.append(rfq, ("a.one", "a.two")[i % 2], ("alice", "bob")[i % 4 // 2], {"i": i})
    every = await store.events()
    assert len(every) == 12

    async def check(flt: EventFilter, expected: list[AuditEvent]) -> None:
        assert await store.events(flt) == expected

    await check(EventFilter(rfq_id="r1"), [e for e in every if e.rfq_id == "r1"])
    await check(EventFilter(types=["a.two"]), [e for e in every if e.type == "a.two"])
    await check(EventFilter(types=["a.one", "a.two"]), every)
    await check(EventFilter(types=[]), [])
    await check(EventFilter(actor="bob"), [e for e in every if e.actor == "bob"])
    await check(EventFilter(after_seq=9), every[9:])
    await check(EventFilter(after_seq=12), [])
    await check(EventFilter(limit=3), every[:3])
    await check(EventFilter(rfq_id="r2", types=["a.two"], actor="alice", limit=1),
                [e for e in every if (e.rfq_id, e.type, e.actor) == ("r2", "a.two", "alice")][:1])
    # since <= ts < until, with boundaries on real event timestamps
    pivot = next(i for i in range(4, 12) if every[i - 1].ts < every[i].ts)
    since = every[pivot].ts
    await check(EventFilter(since=since), [e for e in every if e.ts >= since])
    await check(EventFilter(until=since), [e for e in every if e.ts < since])
    assert every[pivot] in await store.events(EventFilter(since=since))
    assert every[pivot] not in await store.events(EventFilter(until=since))
    window = EventFilter(since=every[1].ts, until=every[-1].ts + timedelta(microseconds=1))
    await check(window, [e for e in every if every[1].ts <= e.ts])


async def test_stream_pages_through_everything_in_seq_order(backend: Backend) -> None:
    store = await backend.open()
    for i in range(23):
        store.append("r1" if i % 2 else "r2", "test.x", "engine", {"i": i})
    await store.flush()
    every = await store.events()
    assert [e async for e in store.stream(batch=5)] == every
    assert [e async for e in store.stream(EventFilter(rfq_id="r1"), batch=4)] == [
        e for e in every if e.rfq_id == "r1"
    ]
    assert [e async for e in store.stream(EventFilter(after_seq=20), batch=2)] == every[20:]
    assert [e async for e in store.stream(EventFilter(limit=7), batch=3)] == every[:7]
    assert [e async for e in store.stream(EventFilter(limit=10), batch=5)] == every[:10]


async def test_rfq_quote_award_fill_projections(backend: Backend) -> None:
    store = await backend.open()
    await lifecycle(store, "r1")
    rfq = await store.get_rfq("r1")
    assert rfq is not None
    assert (rfq.requester, rfq.client_rfq_id, rfq.mandate, rfq.direction) == (
        "alice", "c-1", "hedge", "buy"
    )
    assert (rfq.quantity, rfq.quantity_unit, rfq.notional) == (Decimal(10), "BTC", Decimal(1000000))
    assert (rfq.state, rfq.reason, rfq.filled_quantity) == ("filled", "done", Decimal(10))
    assert rfq.spec["dealers"] == ["d1", "d2", "d3"]
    events = await store.events(EventFilter(rfq_id="r1"))
    assert rfq.created_at == events[0].ts and rfq.updated_at == events[-1].ts

    quotes = await store.quotes("r1")
    assert [(q.dealer_id, q.quote_id, q.status, q.rank) for q in quotes] == [
        ("d1", "r1-q1", "valid", 1), ("d2", "r1-q2", "valid", 2)
    ]
    assert (quotes[0].ask, quotes[0].bid, quotes[0].quantity) == (Decimal("100.5"), None, Decimal(10))
    [a] = await store.awards("r1")
    assert (a.execution_id, a.dealer_id, a.quote_id, a.status) == ("r1-x1", "d1", "r1-q1", "confirmed")
    assert (a.price, a.quantity, a.side) == (Decimal("100.5"), Decimal(10), "ask")
    [f] = await store.fills(rfq_id="r1")
    assert (f.fill_id, f.execution_id, f.dealer_id, f.mandate) == ("r1-f1", "r1-x1", "d1", "hedge")
    assert (f.quantity, f.notional, f.last_date) == (Decimal(10), Decimal(1005), None)
    assert await store.get_rfq("nope") is None
    assert await store.quotes("nope") == []


async def test_quote_rules_replace_reject_and_rank(backend: Backend) -> None:
    store = await backend.open()
    await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
    await store.append("r1", E.QUOTE_RECEIVED, "d1", quote("d1", "q1", ask="101"))
    await store.append("r1", E.QUOTE_RECEIVED, "d1", quote("d1", "q1", ask="99"))  # replaces
    await store.append("r1", E.QUOTE_RECEIVED, "d2", quote("d2", "q2", ask="98"))
    await store.append("r1", E.QUOTE_RECEIVED, "d3", quote("d3", "q3", ask="97"))
    await store.append("r1", E.QUOTE_REJECTED, "engine", {
        "dealer_id": "d4", "quote_id": "q4", "msg_id": "m", "reason": "stale", "stage": "receive",
        "ask": "not-a-number"})
    await store.append("r1", E.QUOTE_REJECTED, "engine", {
        "dealer_id": "d5", "quote_id": None, "msg_id": "m", "reason": "unparseable", "stage": "receive"})
    await store.append("r1", E.QUOTES_RANKED, "engine",
                       ranked([("d2", "q2"), ("d1", "q1")], [("d3", "q3", "above limit")]))
    got = {q.dealer_id: q for q in await store.quotes("r1")}
    assert set(got) == {"d1", "d2", "d3", "d4"}
    assert (got["d1"].ask, got["d1"].status, got["d1"].rank) == (Decimal(99), "valid", 2)
    assert (got["d2"].status, got["d2"].rank) == ("valid", 1)
    assert (got["d3"].status, got["d3"].rank, got["d3"].reason) == ("rejected", None, "above limit")
    assert (got["d4"].status, got["d4"].reason, got["d4"].ask) == ("rejected", "stale", None)
    await store.append("r1", E.QUOTE_REJECTED, "engine", {
        "dealer_id": "d2", "quote_id": "q2", "reason": "expired", "stage": "award"})
    [d2] = [q for q in await store.quotes("r1") if q.dealer_id == "d2"]
    assert (d2.status, d2.reason, d2.rank, d2.ask) == ("rejected", "expired", None, Decimal(98))


async def test_award_status_follows_confirm_and_reject(backend: Backend) -> None:
    store = await backend.open()
    await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
    await store.append("r1", E.AWARD_DECIDED, "engine", award("x1", "d1", "q1"))
    [pending] = await store.awards("r1")
    assert (pending.status, pending.reason) == ("pending", "best price")
    await store.append("r1", E.EXECUTION_REJECTED, "d1", exec_rejected("x1", "d1", "last look"))
    await store.append("r1", E.AWARD_DECIDED, "engine", award("x2", "d2", "q2", price="101"))
    await store.append("r1", E.EXECUTION_CONFIRMED, "d2", confirmed("x2", "d2"))
    await store.append("r1", E.EXECUTION_CONFIRMED, "d9", confirmed("x-unknown", "d9"))
    assert [(a.execution_id, a.status, a.reason) for a in await store.awards("r1")] == [
        ("x1", "rejected", "last look"), ("x2", "confirmed", "best price")
    ]


async def test_fills_and_filled_notional_filters(backend: Backend) -> None:
    store = await backend.open()
    await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
    await store.append("r2", E.RFQ_SUBMITTED, "bob", submitted(requester="bob", mandate="prop"))
    f1 = await store.append("r1", E.FILL_RECORDED, "engine", fill(
        "f1", "x1", "d1", quantity="2.5", notional="250.25", last_date="2026-12-25"))
    f2 = await store.append("r1", E.FILL_RECORDED, "engine", fill(
        "f2", "x1", "d2", quantity="1.5", notional="150.10", last_date=None))
    await store.append("r1", E.FILL_RECORDED, "engine", fill(  # same fill_id again: ignored
        "f2", "x1", "d2", quantity="1.5", notional="150.10"))
    f3 = await store.append("r2", E.FILL_RECORDED, "engine", fill(
        "f3", "x3", "d1", mandate="prop", quantity="7", notional="0.001", last_date="2026-11-30"))
    rfq1 = await store.get_rfq("r1")
    assert rfq1 is not None and rfq1.filled_quantity == Decimal(4)

    notional = store.filled_notional
    assert await notional() == Decimal("400.351")
    assert await notional(mandate="hedge") == Decimal("400.35")
    assert await notional(mandate="prop") == Decimal("0.001")
    assert await notional(dealer_id="d1") == Decimal("250.251")
    assert await notional(since=f2.ts) == Decimal("150.101")
    assert await notional(since=f3.ts + timedelta(microseconds=1)) == Decimal(0)
    assert await notional(open_on=date(2026, 11, 30)) == Decimal("400.351")
    assert await notional(open_on=date(2026, 12, 1)) == Decimal("400.35")  # f3 has expired
    assert await notional(open_on=date(2026, 12, 25)) == Decimal("400.35")  # f1's last day
    assert await notional(open_on=date(2027, 1, 1)) == Decimal("150.10")  # only the undated
    assert await notional(mandate="hedge", dealer_id="d2", since=f1.ts) == Decimal("150.10")
    assert await notional(mandate="nope") == Decimal(0)

    assert [f.fill_id for f in await store.fills()] == ["f1", "f2", "f3"]
    assert [f.fill_id for f in await store.fills(dealer_id="d1")] == ["f1", "f3"]
    assert [f.fill_id for f in await store.fills(rfq_id="r1", dealer_id="d2")] == ["f2"]
    assert [f.fill_id for f in await store.fills(since=f2.ts)] == ["f2", "f3"]
    first = (await store.fills())[0]
    assert first.last_date is not None and first.last_date.isoformat() == "2026-12-25"
    assert first.filled_at == f1.ts and first.price == Decimal("100.5")


async def test_find_rfq_and_list_rfqs(backend: Backend) -> None:
    store = await backend.open()
    await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="c-1"))
    await store.append("r2", E.RFQ_SUBMITTED, "bob", submitted(requester="bob", client_rfq_id="c-1"))
    await store.append("r3", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id=None))
    await store.append("r1", E.RFQ_STATE_CHANGED, "engine", state("created", "open"))
    await store.append("r9", E.RFQ_STATE_CHANGED, "engine", state("created", "open"))  # unknown rfq
    assert await store.find_rfq("alice", "c-1") == "r1"
    assert await store.find_rfq("bob", "c-1") == "r2"
    assert await store.find_rfq("alice", "c-2") is None
    assert await store.find_rfq("carol", "c-1") is None
    assert [r.rfq_id for r in await store.rfqs()] == ["r3", "r2", "r1"]  # newest first
    assert [r.rfq_id for r in await store.rfqs(limit=2)] == ["r3", "r2"]
    assert [r.rfq_id for r in await store.rfqs(states=["open"])] == ["r1"]
    assert [r.rfq_id for r in await store.rfqs(states=["created", "open"], limit=5)] == [
        "r3", "r2", "r1"
    ]
    assert await store.rfqs(states=[]) == []
    assert await store.get_rfq("r9") is None


async def test_unknown_and_malformed_events_are_stored_but_project_nothing(backend: Backend) -> None:
    store = await backend.open()
    a = store.append("r1", E.RFQ_SUBMITTED, "alice", {"notional": "1"})  # no spec
    b = store.append("r2", E.RFQ_SUBMITTED, "alice", submitted())
    c = store.append("r2", E.FILL_RECORDED, "engine", {"fill_id": "f1"})  # missing fields
    d = store.append("r2", "custom.thing", "engine", {"anything": ["goes"]})
    e = store.append(None, E.RFQ_SUBMITTED, "engine", submitted())  # engine-wide: no rfq
    await store.flush()
    assert [x.result().seq for x in (a, b, c, d, e)] == [1, 2, 3, 4, 5]
    assert [r.rfq_id for r in await store.rfqs()] == ["r2"]
    assert await store.fills() == []
    assert (await store.verify()).ok


async def test_reopen_continues_the_chain_and_keeps_projections(backend: Backend) -> None:
    store = await backend.open()
    await lifecycle(store, "r1")
    head = (await store.events())[-1]
    await store.close()
    await store.close()  # idempotent
    again = await backend.open()
    event = await again.append("r2", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="c-2"))
    assert (event.seq, event.prev_hash) == (head.seq + 1, head.hash)
    events = await again.events()
    assert_chained(events)
    assert (await again.get_rfq("r1")) is not None and (await again.find_rfq("alice", "c-2")) == "r2"
    report = await again.verify()
    assert report.ok and report.head_seq == head.seq + 1 and report.checkpoint_seq == head.seq + 1


async def test_concurrent_appends_resolve_in_seq_order(backend: Backend) -> None:
    store = await backend.open(batch_max=64)
    order: list[int] = []

    async def rfq_task(n: int) -> list[int]:
        seqs = []
        for step in range(15):
            event = await store.append(f"r{n}", "test.step", "engine", {"n": n, "step": step})
            order.append(event.seq)
            seqs.append(event.seq)
        return seqs

    per_task = await asyncio.gather(*(rfq_task(n) for n in range(40)))
    burst = [store.append(None, "test.burst", "engine", {"i": i}) for i in range(500)]
    await store.flush()
    events = await store.events()
    assert len(events) == 40 * 15 + 500
    assert_chained(events)
    for n, seqs in enumerate(per_task):
        assert seqs == sorted(seqs)
        assert [e.payload["step"] for e in events if e.rfq_id == f"r{n}"] == list(range(15))
    assert [f.result().payload["i"] for f in burst] == list(range(500))
    assert [f.result().seq for f in burst] == list(range(601, 1101))
    assert order == sorted(order)  # futures resolve in seq order
    stats = store.stats
    assert stats.batches < stats.events  # group commit did group
    assert stats.largest_batch <= 64


async def test_checkpoint_tracks_the_head(backend: Backend) -> None:
    store = await backend.open()
    await lifecycle(store, "r1")
    event = await store.append("r1", "test.last", "engine", {})
    cp = read_checkpoint(backend.head)
    assert cp is not None and (cp.seq, cp.hash, cp.mac) == (event.seq, event.hash, "")
    report = await store.verify()
    assert report.ok and report.checkpoint_seq == event.seq
    assert any("not authenticated" in note for note in report.notes)


async def test_without_checkpoint_verify_says_tail_deletion_is_undetectable(backend: Backend) -> None:
    store = await backend.open(checkpoint=False)
    await store.append("r1", "test.x", "engine", {})
    report = await store.verify()
    assert report.ok and report.checkpoint_seq is None
    assert any("cannot be detected" in note for note in report.notes)
    assert not backend.head.exists()


async def test_keyed_checkpoint_is_authenticated(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFQ_AUDIT_CHECKPOINT_KEY", "s3cret")
    store = await backend.open()
    event = await store.append("r1", "test.x", "engine", {})
    cp = read_checkpoint(backend.head)
    assert cp is not None and len(cp.mac) == 64
    report = await store.verify()
    assert report.ok and report.notes == () and report.head_seq == event.seq


async def test_verify_of_an_empty_store(backend: Backend) -> None:
    store: AuditStore = await backend.open()
    report = await store.verify()
    assert report.ok and (report.events, report.head_seq, report.head_hash) == (0, 0, GENESIS_HASH)
