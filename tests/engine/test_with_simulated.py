"""The engine with the simulated desks (seeded): the flows the demo relies on, end to end,
on the in-memory store and on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain import DealerId, RfqState
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import AuditStore, EventFilter, open_store
from tests.engine.conftest import future_rfq, mandate_config, snapshot

Build = Callable[..., Any]


@pytest.fixture(params=["memory", "sqlite"])
async def build(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Build]:
    made: list[tuple[RfqEngine, AuditStore]] = []

    async def make(desks: dict[str, dict[str, Any]], **mandate: Any) -> tuple[RfqEngine, AuditStore]:
        url = "memory://" if request.param == "memory" else f"sqlite+aiosqlite:///{tmp_path}/a.db"
        store = open_store(url)
        await store.open()
        market = snapshot()
        sims = SimulatedDealers(
            {DealerId(d): SimulatedDealerConfig.model_validate({"seed": i, **cfg})
             for i, (d, cfg) in enumerate(desks.items())}, lambda: market)
        limits = {d: {"credit_limit": "1000000000"} for d in desks}
        engine = RfqEngine(
            store=store, adapters=[sims],
            mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits, **mandate))},
            reference=ModelReferenceProvider(market, max_age=timedelta(minutes=5)),
            config=EngineConfig(confirm_timeout_ms=500))
        await engine.start()
        made.append((engine, store))
        return engine, store

    yield make
    for engine, store in made:
        await engine.stop()
        report = await store.verify()
        assert report.ok, report.problem
        await store.close()


async def states(store: AuditStore, rfq_id: str) -> list[str]:
    events = await store.events(EventFilter(rfq_id=rfq_id, types=["rfq.state_changed"]))
    return [e.payload["to"] for e in events]


async def test_decline_silence_and_last_look_fallback(build: Build) -> None:
    engine, store = await build({
        "tight": {"latency_ms": 5, "spread_bps": "10", "skew_bps": "5", "last_look_reject_rate": 1.0},
        "good": {"latency_ms": 10, "spread_bps": "20"},
        "wide": {"latency_ms": 15, "spread_bps": "60"},
        "shy": {"decline_rate": 1.0},
        "mute": {"silence_rate": 1.0},
    })
    rfq_id = await engine.submit(future_rfq(dealers=["tight", "good", "wide", "shy", "mute"],
                                            window_ms=400))
    assert await engine.wait(rfq_id, 5) is RfqState.FILLED
    assert await states(store, rfq_id) == ["open", "awarding", "confirming", "awarding",
                                           "confirming", "filled"]
    awards = await store.awards(rfq_id)
    assert [(a.dealer_id, a.status) for a in awards] == [("tight", "rejected"), ("good", "confirmed")]
    fills = await store.fills(rfq_id)
    assert [(f.dealer_id, f.quantity) for f in fills] == [("good", 10)]
    declined = await store.events(EventFilter(rfq_id=rfq_id, types=["quote.declined"]))
    assert [e.actor for e in declined] == ["shy"]
    changed = (await states(store, rfq_id))[1]
    assert changed == "awarding"  # the window closed on the deadline: "mute" never answered


async def test_split_award_across_desks_with_size_limits(build: Build) -> None:
    engine, store = await build({
        "a": {"latency_ms": 1, "spread_bps": "10", "max_quantity": "4"},
        "b": {"latency_ms": 1, "spread_bps": "20", "max_quantity": "4"},
        "c": {"latency_ms": 1, "spread_bps": "30", "max_quantity": "4"},
    })
    rfq_id = await engine.submit(future_rfq(dealers=["a", "b", "c"], allow_partial=True))
    assert await engine.wait(rfq_id, 5) is RfqState.FILLED
    fills = sorted((f.dealer_id, f.quantity) for f in await store.fills(rfq_id))
    assert fills == [("a", 4), ("b", 4), ("c", 2)]


async def test_not_partial_declines_size_and_ends_not_filled(build: Build) -> None:
    engine, store = await build({"a": {"latency_ms": 1, "max_quantity": "4"},
                                 "b": {"latency_ms": 1, "max_quantity": "4"}})
    rfq_id = await engine.submit(future_rfq(dealers=["a", "b"]))
    assert await engine.wait(rfq_id, 5) is RfqState.NOT_FILLED
    row = await store.get_rfq(rfq_id)
    assert row is not None and row.state == "not_filled" and row.filled_quantity == 0


async def test_approval_then_fill_and_min_quotes(build: Build) -> None:
    engine, store = await build({"a": {"latency_ms": 1}, "b": {"latency_ms": 1}},
                                approval_threshold="100000", min_quotes=2)
    rfq_id = await engine.submit(future_rfq(dealers=["a", "b"]))
    from tests.engine.conftest import Harness, wait_state

    await wait_state(Harness(engine, None, store), rfq_id, "pending_approval")  # type: ignore[arg-type]
    await engine.approve(rfq_id, approver="bob")
    assert await engine.wait(rfq_id, 5) is RfqState.FILLED
    assert (await states(store, rfq_id))[:2] == ["pending_approval", "open"]
