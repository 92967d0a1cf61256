"""Connection loss on PostgreSQL at the points of an RFQ's life: nothing acknowledged or
observed is lost, the engine halts while the store is down, and every RFQ ends."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from rfq_engine.domain import Award, RfqClosed, RfqNew, RfqState
from rfq_engine.engine import EngineHalted
from rfq_engine.store import EventFilter, StoreState
from rfq_engine.store.outage import RetryPolicy
from tests.engine.conftest import future_rfq
from tests.engine.test_unknown_outcome import confirmed
from tests.faults.conftest import EngineOnStore, MakeEngine, until
from tests.faults.pgkit import PgDatabase, fault_hits, kill_connection_on


async def test_backends_killed_in_last_look_lose_no_confirm(pg_db: PgDatabase,
                                                            make_engine: MakeEngine) -> None:
    """Issue 15, defect 1: the confirm's batch fails on a dead connection; it used to be
    dropped while the RFQ carried on to its fill ("award pending, then a fill")."""
    h = await make_engine(pg_db.url)
    rfq_id, award = await h.to_last_look()
    assert await pg_db.terminate_backends() >= 1
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    types = await h.types(rfq_id)
    assert "execution.confirmed" in types, types
    assert types.index("execution.confirmed") < types.index("fill.recorded")
    awards = await h.store.awards(rfq_id)
    assert [a.status for a in awards] == ["confirmed"]
    assert (await h.store.verify()).ok


async def test_database_down_during_the_window_ends_the_rfq_with_dealers_told(
        pg_db: PgDatabase, make_engine: MakeEngine) -> None:
    """Issue 15, defect 2: the database goes away while the RFQ is open ("could not read
    the chain head"); the RFQ used to stay ``open`` with the dealers never told."""
    h = await make_engine(pg_db.url)
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"], window_ms=1500))
    await h.dealers.next(RfqNew)
    await h.dealers.next(RfqNew)
    await pg_db.refuse_connections()
    h.dealers.quote(rfq_id, "d1", bid="40000")  # observed while the store is down
    await asyncio.sleep(2.5)  # the window ends while the store is down
    assert h.engine.halted is not None and "audit store" in h.engine.halted
    await pg_db.allow_connections()
    state = await h.engine.wait(rfq_id, timeout=30)
    assert state.is_terminal, state
    await h.store.flush()  # rfq.outcome_sent is written after the run ends, not awaited
    row = await h.store.get_rfq(rfq_id)
    assert row is not None and row.state == state.value
    types = await h.types(rfq_id)
    assert "quote.received" in types and "rfq.outcome_sent" in types, (state, types)
    assert {s.dealer for s in h.dealers.sent(RfqClosed)} == {"d1", "d2"}
    halts = await h.store.events(EventFilter(types=["engine.kill_switch"]))
    assert halts and halts[0].payload["halted"] is True
    assert "audit store" in halts[0].payload["reason"]
    assert (await h.store.verify()).ok


LIFECYCLE = ["rfq.submitted", "mandate.checked", "rfq.sent", "quote.received", "window.closed",
             "award.decided", "award.sent", "execution.confirmed", "fill.recorded",
             "rfq.outcome_sent"]


async def one_filled_rfq(h: EngineOnStore) -> str:
    """An RFQ to d1 and d2, both quote, d1 wins and confirms: the whole lifecycle."""
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"], window_ms=5000))
    for _ in range(2):
        await h.dealers.next(RfqNew, timeout=15)
    h.dealers.quote(rfq_id, "d1", bid="40010")
    h.dealers.quote(rfq_id, "d2", bid="40000")
    award = (await h.dealers.next(Award, timeout=15)).message
    assert isinstance(award, Award)
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    await h.dealers.next(RfqClosed, timeout=15)
    await h.store.flush()
    return rfq_id


@pytest.mark.parametrize("event_type", LIFECYCLE)
async def test_connection_lost_while_committing_each_lifecycle_event(
        pg_db: PgDatabase, make_engine: MakeEngine, event_type: str) -> None:
    """The fault matrix's connection loss: the batch holding ``event_type`` loses its
    connection (its backend is terminated) in the middle of its commit. The writer
    retries it at once on a new connection (retaking its lock), the RFQ goes on as if
    nothing happened, every event is stored once, in order, and no outage is declared."""
    h = await make_engine(pg_db.url)
    await kill_connection_on(pg_db, event_type)
    rfq_id = await one_filled_rfq(h)
    assert await fault_hits(pg_db) >= 1, "the fault never fired"
    types = await h.types(rfq_id)
    expected = ["rfq.submitted", "mandate.checked", "rfq.state_changed", "rfq.sent",
                "quote.received", "quote.received", "window.closed", "rfq.state_changed",
                "quotes.ranked", "award.decided", "award.sent", "rfq.state_changed",
                "execution.confirmed", "fill.recorded", "rfq.state_changed", "rfq.outcome_sent"]
    assert Counter(types) == Counter(expected) | Counter(
        t for t in types if t == "award.reference_recorded"), types
    assert h.store.stats.failed_commits >= 1 and h.store.stats.failed_events == 0
    assert h.store.stats.outages == 0 and h.engine.halted is None
    assert (await h.store.verify()).ok
    assert [a.status for a in await h.store.awards(rfq_id)] == ["confirmed"]


async def test_read_only_database_in_last_look_halts_then_resumes_with_nothing_lost(
        pg_db: PgDatabase, make_engine: MakeEngine) -> None:
    """The database turns read-only (a standby, a DBA) while the award is out: commits
    fail, the store is down, the kill switch engages, the confirm waits in memory; when
    writes work again, everything lands in order and the RFQ fills."""
    h = await make_engine(pg_db.url)
    rfq_id, award = await h.to_last_look()
    await pg_db.read_only()
    h.dealers.confirm(award)
    await until(lambda: h.store.health.state is StoreState.DOWN)
    assert h.store.health.state is StoreState.DOWN and "read-only" in (h.store.health.error or "")
    assert h.engine.halted is not None
    with pytest.raises(EngineHalted):
        await h.engine.submit(future_rfq(dealers=["d1"]))
    with pytest.raises(EngineHalted, match="resume once it is back"):
        await h.engine.resume(actor="erin")  # nothing could be recorded meanwhile
    await pg_db.read_only(False)
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    await h.store.flush()
    types = await h.types(rfq_id)
    assert types.index("execution.confirmed") < types.index("fill.recorded")
    assert "rfq.cancel_requested" in types  # the kill switch's, audited once the store was back
    assert h.store.health.state is StoreState.UP and h.store.stats.failed_events == 0
    assert (await h.store.verify()).ok
    await h.engine.resume(actor="erin")  # the store is back: an admin may resume
    assert h.engine.halted is None


async def test_store_down_past_the_limit_stops_the_writer_and_recovery_settles_it(
        pg_db: PgDatabase, make_engine: MakeEngine) -> None:
    """Down for longer than the outage limit in last look: the writer stops (the store
    holds a prefix, no gap), the confirm it could not write is not in the store; the next
    engine on the store, once it is back, asks the dealer and records the fill."""
    h = await make_engine(pg_db.url, retry=RetryPolicy(max_delay_s=0.1, give_up_after_s=1,
                                                       close_grace_s=0.5))
    rfq_id, award = await h.to_last_look()
    await pg_db.refuse_connections()
    h.dealers.confirm(award)
    await until(lambda: h.store.health.state is StoreState.STOPPED)
    assert h.store.health.state is StoreState.STOPPED
    assert h.engine.halted is not None
    await h.engine.stop()
    await h.store.close()
    await pg_db.allow_connections()
    # A restart: recovery asks d1, which booked the trade.
    again = await make_engine(pg_db.url, lookups={award.execution_id: confirmed(award)})
    assert await again.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    await again.store.flush()
    types = await again.types(rfq_id)
    assert "fill.recorded" in types and types.count("execution.confirmed") == 1
    assert (await again.store.verify()).ok


async def test_database_gone_while_idle_is_seen_by_the_probe(
        pg_db: PgDatabase, make_engine: MakeEngine) -> None:
    """No event is being written: the idle writer's probe sees the outage, the kill switch
    engages; the first probe that works again says the store is back."""
    h = await make_engine(pg_db.url, retry=RetryPolicy(max_delay_s=0.1, probe_interval_s=0.1,
                                                       close_grace_s=1))
    await pg_db.refuse_connections()
    await until(lambda: h.engine.halted is not None)
    assert h.store.health.state is StoreState.DOWN and h.engine.halted is not None
    await pg_db.allow_connections()
    await until(lambda: h.store.health.state is StoreState.UP)
    assert h.store.health.state is StoreState.UP
    await h.store.flush()
    halts = await h.store.events(EventFilter(types=["engine.kill_switch"]))
    assert len(halts) == 1 and halts[0].payload["halted"] is True
