"""The real engine against simulated desks that model issue 12: a dealer slower than the
engine's ``send_timeout_ms``, and a confirm lost after the dealer executed.

The invariant every test checks: the trades the desks executed (``executed_count``) are
exactly the fills the engine recorded. More executions than fills is a double execution.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain import DealerId, RfqState
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import AuditStore, open_store
from tests.engine.conftest import future_rfq, mandate_config, snapshot

Build = Callable[..., Any]


@pytest.fixture
async def build() -> AsyncIterator[Build]:
    made: list[tuple[RfqEngine, AuditStore, SimulatedDealers]] = []

    async def make(desks: dict[str, dict[str, Any]], **engine_config: Any
                   ) -> tuple[RfqEngine, AuditStore, SimulatedDealers]:
        store = open_store("memory://")
        await store.open()
        market = snapshot()
        sims = SimulatedDealers(
            {DealerId(d): SimulatedDealerConfig.model_validate(
                {"seed": i, "latency_ms": 5.0, "latency_jitter_ms": 0.0, "confirm_latency_ms": 1.0, **cfg})
             for i, (d, cfg) in enumerate(desks.items())}, lambda: market)
        limits = {d: {"credit_limit": "1000000000"} for d in desks}
        engine = RfqEngine(
            store=store, adapters=[sims],
            mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits, min_quotes=1))},
            reference=ModelReferenceProvider(market, max_age=timedelta(minutes=5)),
            config=EngineConfig(**engine_config))
        await engine.start()
        made.append((engine, store, sims))
        return engine, store, sims

    yield make
    for engine, store, sims in made:
        await engine.stop()
        await sims.close()
        report = await store.verify()
        assert report.ok, report.problem
        await store.close()


async def test_a_lost_confirm_is_reconciled_without_a_second_trade(build: Build) -> None:
    # "lossy" quotes the best bid (generous skew), executes, and its confirm is lost
    engine, store, sims = await build(
        {"lossy": {"skew_bps": "5", "lose_confirm_rate": 1.0}, "backup": {}},
        confirm_timeout_ms=300, send_timeout_ms=200)
    rfq_id = await engine.submit(future_rfq(dealers=["lossy", "backup"], window_ms=300))
    assert await engine.wait(rfq_id, 10) is RfqState.FILLED
    fills = await store.fills(rfq_id)
    assert [f.dealer_id for f in fills] == ["lossy"]
    assert (sims.executed_count(DealerId("lossy")), sims.executed_count(DealerId("backup"))) == (1, 0)
    assert sims.executed_count() == len(fills)


async def test_a_dealer_slower_than_the_send_timeout_is_never_traded_twice(build: Build) -> None:
    # "slow" books for 800 ms: the send times out at 100 ms, confirm_by passes at 300 ms while
    # a lookup says UNKNOWN (booking in progress); the trade is done at 800 ms.
    engine, store, sims = await build(
        {"slow": {"skew_bps": "5", "book_latency_ms": 800.0}, "backup": {}},
        confirm_timeout_ms=300, send_timeout_ms=100)
    rfq_id = await engine.submit(future_rfq(dealers=["slow", "backup"], window_ms=300))
    await engine.wait(rfq_id, 15)
    fills = await store.fills(rfq_id)
    assert sims.executed_count(DealerId("backup")) == 0  # never awarded while "slow" is unknown
    assert sims.executed_count() == len(fills) == 1
    assert [f.dealer_id for f in fills] == ["slow"]
