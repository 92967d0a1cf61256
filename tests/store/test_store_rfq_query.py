"""RfqQuery and FillQuery on the memory store, SQLite and PostgreSQL alike: every filter, and
keyset pagination newest first across RFQs created at the same microsecond."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import product
from typing import Any

import asyncpg
import pytest
from audit_backends import Backend
from audit_samples import fill, state, submitted

from rfq_engine.store import (
    AuditStore,
    EventType,
    FillQuery,
    RfqCursor,
    RfqQuery,
    RfqRow,
    SqlAuditStore,
)

E = EventType
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
REQUESTERS = ("alice", "bob", "carol")
MANDATES = ("hedge", "prop")
STATES = ("created", "open", "cancelled", "filled")


class Clock:
    """The writer's clock, held still so that RFQs share a ``created_at``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr("rfq_engine.store.writer.utc_now", c)
    return c


def rfq_id(i: int) -> str:
    """Ids out of creation order, so the tie-break (rfq_id descending) is visible."""
    return f"r{(i * 7) % 30:02d}"


async def desk(store: AuditStore, clock: Clock, n: int = 30) -> list[RfqRow]:
    """``n`` RFQs, three per second, of three requesters, two mandates, four states."""
    for i in range(n):
        clock.now = T0 + timedelta(seconds=i // 3)
        store.append(rfq_id(i), E.RFQ_SUBMITTED, REQUESTERS[i % 3], submitted(
            requester=REQUESTERS[i % 3], mandate=MANDATES[i % 5 % 2], client_rfq_id=f"c-{i}"))
    clock.now = T0 + timedelta(hours=1)  # later state changes leave created_at alone
    for i in range(n):
        to = STATES[i % 4]
        if to != "created":
            store.append(rfq_id(i), E.RFQ_STATE_CHANGED, "engine", state("created", to))
    await store.flush()
    return await store.rfqs()


def expected(rows: list[RfqRow], keep: Callable[[RfqRow], bool], limit: int | None = None
             ) -> list[str]:
    """What a query answers, worked out here without the store's rules."""
    ids = [r.rfq_id for r in sorted(rows, key=lambda r: (r.created_at, r.rfq_id), reverse=True)
           if keep(r)]
    return ids if limit is None else ids[:limit]


def ids(rows: list[RfqRow]) -> list[str]:
    return [r.rfq_id for r in rows]


async def test_rfqs_are_newest_first_with_ties_broken_by_rfq_id(backend: Backend,
                                                                 clock: Clock) -> None:
    store = await backend.open()
    rows = await desk(store, clock)
    assert len(rows) == 30
    assert ids(rows) == expected(rows, lambda r: True)
    assert [r.created_at for r in rows[:3]] == [T0 + timedelta(seconds=9)] * 3  # a tie
    assert ids(rows[:3]) == ["r23", "r16", "r09"]  # rfq_id descending within it
    assert {r.updated_at for r in rows if r.state != "created"} == {T0 + timedelta(hours=1)}


async def test_every_filter_and_their_combinations(backend: Backend, clock: Clock) -> None:
    store = await backend.open()
    rows = await desk(store, clock)
    since, until = T0 + timedelta(seconds=2), T0 + timedelta(seconds=6)
    cases: list[tuple[RfqQuery, Callable[[RfqRow], bool]]] = [
        (RfqQuery(), lambda r: True),
        (RfqQuery(states=["open"]), lambda r: r.state == "open"),
        (RfqQuery(states=["open", "filled"]), lambda r: r.state in ("open", "filled")),
        (RfqQuery(states=[]), lambda r: False),
        (RfqQuery(requester="bob"), lambda r: r.requester == "bob"),
        (RfqQuery(requester="nobody"), lambda r: False),
        (RfqQuery(mandate="prop"), lambda r: r.mandate == "prop"),
        (RfqQuery(created_since=since), lambda r: r.created_at >= since),
        (RfqQuery(created_until=until), lambda r: r.created_at < until),
        (RfqQuery(created_since=since, created_until=until),
         lambda r: since <= r.created_at < until),
        (RfqQuery(created_since=until, created_until=since), lambda r: False),
    ]
    for states, requester, mandate in product((None, ["cancelled", "created"]),
                                              (None, "alice", "carol"), (None, "hedge")):
        cases.append((RfqQuery(states=states, requester=requester, mandate=mandate),
                      lambda r, s=states, q=requester, m=mandate: (
                          (s is None or r.state in s) and (q is None or r.requester == q)
                          and (m is None or r.mandate == m))))
    for query, keep in cases:
        want = expected(rows, keep)
        assert ids(await store.select_rfqs(query)) == want, query
        for limit in (0, 1, 4):
            limited = RfqQuery(**{**_fields(query), "limit": limit})
            assert ids(await store.select_rfqs(limited)) == want[:limit], limited
    assert 0 < len(expected(rows, cases[-2][1])) < 30  # the window is not vacuous


def _fields(query: RfqQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in RfqQuery.__dataclass_fields__}


async def test_keyset_pages_visit_every_rfq_once_across_ties(backend: Backend,
                                                             clock: Clock) -> None:
    store = await backend.open()
    rows = await desk(store, clock)
    for base, keep in [
        (RfqQuery(), lambda r: True),
        (RfqQuery(requester="alice"), lambda r: r.requester == "alice"),
        (RfqQuery(states=["open", "created"], mandate="hedge"),
         lambda r: r.state in ("open", "created") and r.mandate == "hedge"),
    ]:
        want = expected(rows, keep)
        for limit in (1, 2, 4, 5, len(want), 100):
            walked: list[str] = []
            pages = 0
            cursor: RfqCursor | None = None
            while True:
                page = await store.rfq_page(RfqQuery(**{**_fields(base), "after": cursor,
                                                        "limit": limit}))
                pages += 1
                walked += ids(page.rows)
                assert len(page.rows) <= limit
                if page.next is None:
                    break
                assert page.next == RfqCursor.of(page.rows[-1])
                cursor = page.next
            assert walked == want, (base, limit)
            assert pages == max(1, -(-len(want) // limit))  # no empty page at the end
    everything = await store.rfq_page(RfqQuery())
    assert ids(everything.rows) == ids(rows) and everything.next is None
    nothing = await store.rfq_page(RfqQuery(limit=0))
    assert nothing.rows == [] and nothing.next is None


async def test_a_cursor_inside_a_tie_and_rfqs_created_during_the_walk(backend: Backend,
                                                                      clock: Clock) -> None:
    store = await backend.open()
    rows = await desk(store, clock)
    tie = T0 + timedelta(seconds=4)
    assert ids([r for r in rows if r.created_at == tie]) == ["r24", "r08", "r01"]
    after = await store.select_rfqs(RfqQuery(after=RfqCursor(tie, "r08")))
    assert ids(after) == ["r01", *expected(rows, lambda r: r.created_at < tie)]
    # a cursor need not name a stored RFQ: it is a position in the order
    assert ids(await store.select_rfqs(RfqQuery(after=RfqCursor(tie, "r1"), limit=2))) == [
        "r08", "r01"]
    first = await store.rfq_page(RfqQuery(limit=10))
    clock.now = T0 + timedelta(hours=2)
    await store.append("r99", E.RFQ_SUBMITTED, "alice", submitted(client_rfq_id="late"))
    second = await store.rfq_page(RfqQuery(after=first.next, limit=10))
    assert ids(first.rows + second.rows) == ids(rows)[:20]  # the new RFQ shifts nothing
    assert ids((await store.rfq_page(RfqQuery(limit=1))).rows) == ["r99"]


async def test_fill_query_filters(backend: Backend, clock: Clock) -> None:
    store = await backend.open()
    await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
    clock.now = T0 + timedelta(seconds=1)
    await store.append("r1", E.FILL_RECORDED, "engine", fill(
        "f1", "x1", "d1", quantity="2", notional="200", last_date="2026-12-25"))
    clock.now = T0 + timedelta(seconds=2)
    await store.append("r2", E.FILL_RECORDED, "engine", fill(
        "f2", "x2", "d2", mandate="prop", quantity="1", notional="100.5"))
    await store.append("r1", E.FILL_RECORDED, "engine", fill(
        "f3", "x3", "d2", quantity="3", notional="0.25", last_date="2026-11-30"))
    cases = [
        (FillQuery(), ["f1", "f2", "f3"], "300.75"),
        (FillQuery(mandate="hedge"), ["f1", "f3"], "200.25"),
        (FillQuery(rfq_id="r1", dealer_id="d2"), ["f3"], "0.25"),
        (FillQuery(since=T0 + timedelta(seconds=2)), ["f2", "f3"], "100.75"),
        (FillQuery(open_on=date(2026, 12, 1)), ["f1", "f2"], "300.5"),
        (FillQuery(mandate="hedge", open_on=date(2027, 1, 1)), [], "0"),
    ]
    for query, fills, notional in cases:
        assert [f.fill_id for f in await store.select_fills(query)] == fills, query
        assert await store.sum_notional(query) == Decimal(notional), query


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        RfqQuery(limit=-1)


# --- SQL: the indexes, and the read-only reader's merge ----------------------------------

NEW_INDEXES = {"ix_rfqs_created", "ix_rfqs_state_created", "ix_rfqs_requester_created",
               "ix_rfqs_mandate_created"}


async def rfq_indexes(backend: Backend) -> set[str]:
    if backend.kind == "sqlite":
        conn = sqlite3.connect(backend.dsn)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' "
                                "AND tbl_name = 'rfqs' AND sql IS NOT NULL").fetchall()
        finally:
            conn.close()
        return {r[0] for r in rows}
    pg = await asyncpg.connect(backend.dsn)
    try:
        records = await pg.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'rfqs'")
    finally:
        await pg.close()
    return {r[0] for r in records} - {"rfqs_pkey"}


async def test_the_writer_gives_an_older_database_this_schema_s_indexes(
    sql_backend: Backend, clock: Clock,
) -> None:
    store = await sql_backend.open()
    rows = await desk(store, clock, n=6)
    await store.close()
    assert await rfq_indexes(sql_backend) == NEW_INDEXES | {"ix_rfqs_requester_client"}
    tamper = sql_backend.tamper()  # back to the indexes of the previous schema
    for name in NEW_INDEXES:
        await tamper.execute(f"DROP INDEX {name}")
    await tamper.execute("CREATE INDEX ix_rfqs_state ON rfqs (state)")
    await tamper.execute("CREATE INDEX ix_rfqs_created_at ON rfqs (created_at)")
    reader = await sql_backend.open(readonly=True)  # a reader changes nothing, answers all
    assert await reader.rfqs() == rows
    assert await rfq_indexes(sql_backend) == {"ix_rfqs_requester_client", "ix_rfqs_state",
                                              "ix_rfqs_created_at"}
    await reader.close()
    again = await sql_backend.open()
    assert await rfq_indexes(sql_backend) == NEW_INDEXES | {"ix_rfqs_requester_client"}
    assert await again.rfqs() == rows


@pytest.mark.parametrize(("query", "index"), [
    (RfqQuery(limit=51), "ix_rfqs_created"),
    (RfqQuery(after=RfqCursor(T0, "r5"), limit=51), "ix_rfqs_created"),
    (RfqQuery(requester="alice", after=RfqCursor(T0, "r5"), limit=51),
     "ix_rfqs_requester_created"),
    (RfqQuery(mandate="prop", limit=51), "ix_rfqs_mandate_created"),
    (RfqQuery(states=["open"], after=RfqCursor(T0, "r5"), limit=51), "ix_rfqs_state_created"),
])
async def test_sqlite_reads_a_page_from_an_index_without_sorting(
    tmp_path: Any, query: RfqQuery, index: str,
) -> None:
    from sqlalchemy import create_engine, event, select

    from rfq_engine.store.sql_reads import NEWEST_FIRST, rfq_where
    from rfq_engine.store.tables import rfqs

    db = tmp_path / "audit.db"
    async with SqlAuditStore(f"sqlite+aiosqlite:///{db}") as store:
        await store.append("r1", E.RFQ_SUBMITTED, "alice", submitted())
    engine = create_engine(f"sqlite:///{db}")

    @event.listens_for(engine, "before_cursor_execute", retval=True)
    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> tuple[str, Any]:
        return f"EXPLAIN QUERY PLAN {statement}", parameters

    stmt = select(rfqs).where(*rfq_where(query)).order_by(*NEWEST_FIRST).limit(query.limit)
    try:
        with engine.connect() as conn:  # the store's own statement, bound as the store binds it
            plan = " | ".join(str(row[-1]) for row in conn.execute(stmt).cursor.fetchall())
    finally:
        engine.dispose()
    assert f"USING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


async def test_a_read_only_reader_filters_and_pages_the_rows_its_tables_miss(
    tmp_path: Any, clock: Clock,
) -> None:
    """The SQLite reader merges the events its tables do not show yet (sql_reads.py): the
    merge must keep every filter and the page boundaries of the writer's answers."""
    from test_store_sqlite_projection import Gate, committer_of

    url = f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}"
    queries = [RfqQuery(limit=4), RfqQuery(states=["open"], limit=3),
               RfqQuery(states=["filled", "cancelled"]), RfqQuery(requester="bob", limit=2),
               RfqQuery(mandate="hedge", after=RfqCursor(T0 + timedelta(seconds=5), "r1")),
               RfqQuery(states=["open"], after=RfqCursor(T0 + timedelta(seconds=9), "r16"),
                        limit=2)]

    async def answers(store: AuditStore) -> list[Any]:
        return [await store.rfq_page(q) for q in queries]

    async with SqlAuditStore(url) as store:
        await desk(store, clock)
        await store.flush()  # the gate holds the next batch's projection, not this one's
        gate = Gate(committer_of(store))
        clock.now = T0 + timedelta(seconds=9)  # new RFQs inside the newest tie
        batch = [("r05x", E.RFQ_SUBMITTED, "bob", submitted(requester="bob", client_rfq_id="x")),
                 ("r05x", E.RFQ_STATE_CHANGED, "engine", state("created", "open")),
                 *[(rfq_id(i), E.RFQ_STATE_CHANGED, "engine", state("open", "filled"))
                   for i in range(1, 30, 8)],  # open RFQs leave the state=open answers
                 *[(rfq_id(i), E.RFQ_STATE_CHANGED, "engine", state("created", "open"))
                   for i in range(0, 30, 8)]]  # and others join them
        for item in batch:
            store.append(*item)
        await gate.reached()
        async with SqlAuditStore(url, readonly=True) as reader:
            seen = await answers(reader)
        gate.release()
        await store.flush()
        assert seen == await answers(store)
    assert "r05x" in ids(seen[0].rows) and "r05x" in ids(seen[1].rows)
    assert seen[1].next is not None and seen[3].next is not None
