"""What only the SQL stores do: single-writer lock, read-only mode, failed commits, storage."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from audit_backends import Backend
from audit_samples import fill, lifecycle, submitted

from rfq_engine.store import (
    EventFilter,
    EventType,
    InMemoryAuditStore,
    SqlAuditStore,
    StoreError,
    open_store,
    read_checkpoint,
)
from rfq_engine.store.outage import RetryPolicy, StoreState


async def test_second_writer_is_refused_and_readers_work_alongside(sql_backend: Backend) -> None:
    writer = await sql_backend.open()
    await lifecycle(writer, "r1")
    with pytest.raises(StoreError, match="another writer holds"):
        await sql_backend.open()
    reader = await sql_backend.open(readonly=True)
    assert len(await reader.events()) == 9
    assert (await reader.get_rfq("r1")) is not None
    with pytest.raises(StoreError, match="read-only"):
        reader.append("r1", "test.x", "engine", {})
    await writer.close()
    successor = await sql_backend.open()  # the lock went with the writer
    assert (await successor.append("r1", "test.x", "engine", {})).seq == 10
    assert len(await reader.events()) == 10


async def test_readonly_verify_while_the_writer_appends(sql_backend: Backend) -> None:
    writer = await sql_backend.open()
    reader = await sql_backend.open(readonly=True)
    for i in range(300):
        writer.append("r1", "test.x", "engine", {"i": i})
    appended = asyncio.ensure_future(writer.flush())
    reports = [await reader.verify() for _ in range(3)]
    await appended
    reports.append(await reader.verify())
    assert all(r.ok for r in reports), [r.problem for r in reports]
    assert reports[-1].events == 300 and reports[-1].checkpoint_seq == 300


async def fail_inserts_while_faulty(backend: Backend) -> None:
    """A trigger that fails every insert into audit_events while the table ``fault`` has a
    row: a database that refuses commits until the test clears it."""
    tamper = backend.tamper()
    if backend.kind == "sqlite":
        await tamper.execute(
            "DROP TABLE IF EXISTS fault; CREATE TABLE fault (x INTEGER); INSERT INTO fault VALUES (1); "
            "CREATE TRIGGER faulty BEFORE INSERT ON audit_events WHEN EXISTS (SELECT 1 FROM fault) "
            "BEGIN SELECT RAISE(ABORT, 'the store refuses writes'); END;"
        )
    else:
        await tamper.execute(
            "DROP TABLE IF EXISTS fault; CREATE TABLE fault (x INTEGER); INSERT INTO fault VALUES (1); "
            "CREATE OR REPLACE FUNCTION faulty() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF EXISTS (SELECT 1 FROM fault) THEN RAISE EXCEPTION 'the store refuses writes'; "
            "END IF; RETURN NEW; END $$; CREATE TRIGGER faulty BEFORE INSERT ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION faulty();"
        )


FAST_RETRY = RetryPolicy(first_delay_s=0.01, max_delay_s=0.05, give_up_after_s=0.5)


async def test_a_commit_that_keeps_failing_stops_the_writer_and_drops_nothing_before_it(
        sql_backend: Backend) -> None:
    """Issue 15: a failed batch used to be failed alone while the chain went on after it
    (a hole in the record). Now it is retried, later events wait behind it, and past the
    outage limit the writer stops: every waiting future fails, the store holds the prefix."""
    store = await sql_backend.open(retry=FAST_RETRY)
    downs: list[StoreState] = []
    store.watch_health(lambda h: downs.append(h.state))
    first = await store.append("r1", "test.x", "engine", {})
    await fail_inserts_while_faulty(sql_backend)
    bad = store.append("r1", "test.x", "engine", {"i": 1})
    later = store.append("r1", "test.x", "engine", {"i": 2})
    with pytest.raises(StoreError, match=r"audit writer stopped.*unavailable"):
        await bad
    with pytest.raises(StoreError, match="audit writer stopped"):
        await later
    with pytest.raises(StoreError, match="audit writer stopped"):
        store.append("r1", "test.x", "engine", {})
    assert downs == [StoreState.DOWN, StoreState.STOPPED]
    assert store.health.state is StoreState.STOPPED
    assert store.stats.failed_commits >= 3 and store.stats.outages == 1  # type: ignore[attr-defined]
    await store.close()
    reader = await sql_backend.open(readonly=True)
    assert (await reader.verify()).ok
    assert [e.seq for e in await reader.events()] == [first.seq]
    await sql_backend.tamper().execute("DELETE FROM fault")
    successor = await sql_backend.open()  # a restart goes on from the prefix
    assert (await successor.append("r1", "test.x", "engine", {})).seq == 2


async def test_a_commit_that_fails_for_a_while_is_retried_with_the_same_seqs(
        sql_backend: Backend) -> None:
    store = await sql_backend.open(batch_max=50, retry=RetryPolicy(first_delay_s=0.01,
                                                                   max_delay_s=0.05))
    first = await store.append("r1", "test.x", "engine", {})
    await fail_inserts_while_faulty(sql_backend)
    futures = [store.append("r1", "test.x", "engine", {"i": i}) for i in range(301)]
    await asyncio.sleep(0.3)
    assert store.health.state is StoreState.DOWN and not any(f.done() for f in futures)
    await sql_backend.tamper().execute("DELETE FROM fault")
    written = await asyncio.gather(*futures)
    assert store.health.state is StoreState.UP
    assert [e.seq for e in written] == list(range(2, 303))
    assert [e.payload["i"] for e in written] == list(range(301))
    assert written[0].prev_hash == first.hash
    report = await store.verify()
    assert report.ok and report.head_seq == 302 and report.checkpoint_seq == 302
    assert store.stats.failed_events == 0  # type: ignore[attr-defined]


async def test_readonly_open_needs_an_existing_store(tmp_path: Path, backend: Backend) -> None:
    if backend.kind == "memory":
        with pytest.raises(StoreError, match="always be empty"):
            open_store("memory://", readonly=True)
        return
    if backend.kind == "sqlite":
        missing = SqlAuditStore(f"sqlite+aiosqlite:///{tmp_path}/nope.db", readonly=True)
        with pytest.raises(StoreError, match="no audit database"):
            await missing.open()
        assert not (tmp_path / "nope.db").exists()
        return
    reader = backend.build(readonly=True)
    with pytest.raises(StoreError, match="no audit tables"):
        await reader.open()


async def test_open_store_defaults(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), InMemoryAuditStore)
    db = tmp_path / "a.db"
    async with open_store(f"sqlite+aiosqlite:///{db}") as store:  # type: ignore[attr-defined]
        event = await store.append("r1", "test.x", "engine", {})
    cp = read_checkpoint(f"{db}.head")  # the SQLite default location
    assert cp is not None and (cp.seq, cp.hash) == (1, event.hash)
    with pytest.raises(StoreError, match="unsupported"):
        open_store("mysql+aiomysql://x/y")
    with pytest.raises(StoreError, match="file path"):
        open_store("sqlite+aiosqlite:///:memory:")
    with pytest.raises(ValueError, match="synchronous"):
        open_store(f"sqlite+aiosqlite:///{db}", sqlite_synchronous="SOMETIMES")


@pytest.mark.postgres
async def test_postgres_has_no_default_checkpoint(pg_backend: Backend) -> None:
    store = open_store(pg_backend.url)
    pg_backend.stores.append(store)
    await store.open()
    await store.append("r1", "test.x", "engine", {})
    report = await store.verify()
    assert report.ok and report.checkpoint_seq is None
    assert any("cannot be detected" in n for n in report.notes)


@pytest.mark.postgres
async def test_every_postgres_session_bounds_a_vanished_peer(pg_backend: Backend) -> None:
    """Each pooled session asks the server for keepalives and a TCP user timeout (about 5 s to
    drop a session whose machine vanished, which may hold a lock the standby needs)."""
    from sqlalchemy import text

    store = open_store(pg_backend.url)
    pg_backend.stores.append(store)
    await store.open()
    engine = store._engine  # the store's own pool
    assert engine is not None
    async with engine.connect() as conn:
        shown = {name: (await conn.execute(text(f"SHOW {name}"))).scalar()
                 for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
                              "tcp_user_timeout")}
    assert shown == {"tcp_keepalives_idle": "2", "tcp_keepalives_interval": "1",
                     "tcp_keepalives_count": "3", "tcp_user_timeout": "5000"}  # s, s, probes, ms


async def test_sqlite_stores_exact_text_decimals_and_z_timestamps(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    for sync in ("NORMAL", "FULL"):
        async with SqlAuditStore(f"sqlite+aiosqlite:///{db}", sqlite_synchronous=sync) as store:
            await store.append(f"r-{sync}", EventType.RFQ_SUBMITTED, "alice", submitted())
            for i in range(3):
                await store.append(f"r-{sync}", EventType.FILL_RECORDED, "engine",
                                   fill(f"{sync}-{i}", "x", "d1", quantity="0.1", notional="0.1"))
            rfq = await store.get_rfq(f"r-{sync}")
            assert rfq is not None and rfq.filled_quantity == Decimal("0.3")
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}", readonly=True) as reader:
        assert await reader.filled_notional() == Decimal("0.6")  # a float sum would not be
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert {r[0] for r in conn.execute("SELECT typeof(notional) FROM fills")} == {"text"}
        assert conn.execute("SELECT filled_quantity FROM rfqs").fetchall() == [("0.3",), ("0.3",)]
        for (ts,) in conn.execute("SELECT ts FROM audit_events"):
            assert len(ts) == 27 and ts.endswith("Z")
    finally:
        conn.close()


async def test_replayed_creations_after_reopen_follow_the_projection_rules(
    sql_backend: Backend,
) -> None:
    """Rows the SQLite writer assumes new (rfq.submitted, award.decided, fill.recorded) may
    exist when its row cache is cold: a replay must still be ignored, as the rules say."""
    from audit_samples import award, quote, state

    E = EventType
    store = await sql_backend.open()
    await lifecycle(store, "r1")
    await store.close()
    store = await sql_backend.open()
    replay = [
        ("r1", E.RFQ_SUBMITTED, "alice", submitted(notional="5")),  # ignored: rfq exists
        ("r1", E.RFQ_STATE_CHANGED, "engine", state("filled", "closed", "replayed")),
        ("r1", E.AWARD_DECIDED, "engine", award("r1-x1", "d9", "r1-q9", price="1")),  # ignored
        ("r1", E.FILL_RECORDED, "engine", fill("r1-f1", "r1-x1", "d1", quantity="10")),  # ignored
        ("r1", E.FILL_RECORDED, "engine", fill("r1-f2", "r1-x1", "d1", quantity="1")),
        ("r1", E.QUOTE_RECEIVED, "d1", quote("d1", "r1-q1", ask="99")),  # replaces
        ("r2", E.RFQ_SUBMITTED, "bob", submitted(requester="bob")),
        ("r2", E.RFQ_STATE_CHANGED, "engine", state("created", "open")),
    ]
    await asyncio.gather(*(store.append(*event) for event in replay))  # one batch
    r1, r2 = await store.get_rfq("r1"), await store.get_rfq("r2")
    assert r1 is not None and r2 is not None
    assert (r1.state, r1.reason, r1.notional, r1.filled_quantity) == (
        "closed", "replayed", Decimal(1000000), Decimal(11))
    assert (r2.state, r2.requester) == ("open", "bob")
    [x1] = await store.awards("r1")
    assert (x1.dealer_id, x1.price, x1.status) == ("d1", Decimal("100.5"), "confirmed")
    assert [(f.fill_id, f.quantity) for f in await store.fills("r1")] == [
        ("r1-f1", Decimal(10)), ("r1-f2", Decimal(1))]
    q1 = [q for q in await store.quotes("r1") if q.quote_id == "r1-q1"]
    assert [(q.ask, q.status) for q in q1] == [(Decimal(99), "received")]
    assert store.stats.failed_batches == 0  # type: ignore[attr-defined]
    assert (await store.verify()).ok


@pytest.mark.parametrize("last", ["ix_audit_events_type", "ix_audit_events_rfq_id"])
@pytest.mark.parametrize("flt", [
    EventFilter(rfq_id="r1"),
    EventFilter(rfq_id="r1", types=["rfq.submitted"], limit=1),  # the risk ledger's look-up
    EventFilter(rfq_id="r1", types=["rfq.submitted", "fill.recorded"], after_seq=3),
])
async def test_sqlite_reads_one_rfqs_events_from_its_index(tmp_path: Path, flt: EventFilter,
                                                           last: str) -> None:
    """Without statistics SQLite's planner took the type index for an RFQ's events of a type and
    read every event of that type: 3 s for one look-up in a log of 1.3 million events. Which
    index it takes depends on the order they were created in (the schema's order varies from
    one database to the next), so each is made the last in turn."""
    from sqlalchemy import create_engine
    from sqlalchemy import event as sa_event

    db = tmp_path / "audit.db"
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}", checkpoint_path=None) as store:
        await lifecycle(store, "r2", client_rfq_id="c-2")
        await lifecycle(store, "r1")
        assert [e.type for e in await store.events(flt)] == [
            e.type for e in await store.events(EventFilter(rfq_id="r1"))
            if e.seq > flt.after_seq and (flt.types is None or e.type in flt.types)][:flt.limit]
    with sqlite3.connect(db) as raw:
        column = last.removeprefix("ix_audit_events_")
        raw.executescript(f"DROP INDEX {last}; CREATE INDEX {last} ON audit_events ({column});")
    engine = create_engine(f"sqlite:///{db}")

    @sa_event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(conn: object, cursor: object, statement: str, parameters: object, context: object,
                executemany: bool) -> tuple[str, object]:
        return f"EXPLAIN QUERY PLAN {statement}", parameters

    try:
        with engine.connect() as conn:  # the store's own statement
            plan = " | ".join(str(row[-1]) for row in conn.execute(SqlAuditStore._event_query(flt))
                              .cursor.fetchall())
    finally:
        engine.dispose()
    assert "INDEX ix_audit_events_rfq_id" in plan and "ix_audit_events_type" not in plan, plan
