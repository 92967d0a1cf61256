"""A real engine with simulated desks over a SQLite store, and a hedge scheduler on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain import DealerId
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.hedging.program import ProgramConfig
from rfq_engine.hedging.scheduler import HedgeScheduler
from rfq_engine.mandate import Mandate, MandateConfig
from rfq_engine.pricing.reference import ModelReferenceProvider, ReferencePriceProvider
from rfq_engine.store import AuditStore, EventFilter, open_store
from tests.hedging.kit import DESKS, snapshot


@dataclass
class System:
    engine: RfqEngine
    store: AuditStore
    scheduler: HedgeScheduler
    closed: bool = False

    async def decisions(self) -> list[dict[str, Any]]:
        return [e.payload for e in await self.store.events(EventFilter(types=["program.decided"]))]

    async def program_rfqs(self) -> list[Any]:
        return [r for r in await self.store.rfqs() if r.requester.startswith("program:")]

    async def settle(self, rfq_ids: list[str]) -> list[str]:
        return [(await self.engine.wait(rfq_id, 10)).value for rfq_id in rfq_ids]


Open = Callable[..., Any]


@pytest.fixture
async def open_system(tmp_path: Path) -> AsyncIterator[Open]:
    """``await open_system(programs, clock)``: engine + store + scheduler over ``tmp/hedge.db``.
    Call it again to simulate a restart over the same database (close the first with ``crash``)."""
    running: list[System] = []

    async def make(programs: Mapping[str, ProgramConfig], clock: Callable[[], datetime], *,
                   reference: ReferencePriceProvider | None = None,
                   submit_for_approval: bool = False, tick_size: str = "0.01", **mandate: Any) -> System:
        store = open_store(f"sqlite+aiosqlite:///{tmp_path}/hedge.db")
        await store.open()
        market = snapshot()
        desks = {DealerId(d): SimulatedDealerConfig.model_validate({
            "seed": i, "latency_ms": 5, "latency_jitter_ms": 0, "confirm_latency_ms": 5,
            "spread_bps": str(10 * (i + 1)), "tick_size": tick_size}) for i, d in enumerate(DESKS)}
        limits = {"underlyings": ["BTC", "HASHPRICE"], "instruments": ["future", "option", "hashprice_ndf"],
                  "max_tenor_days": 400, "dealers": {d: {"credit_limit": "1000000000"} for d in DESKS},
                  "max_hedge_ratio": "0.8"}
        limits.update(mandate)
        engine_reference = ModelReferenceProvider(market, max_age=None)
        engine = RfqEngine(store=store, adapters=[SimulatedDealers(desks, lambda: market)],
                           mandates={"treasury": Mandate("treasury", MandateConfig.model_validate(limits))},
                           reference=engine_reference, config=EngineConfig(confirm_timeout_ms=1000))
        await engine.start()
        scheduler = HedgeScheduler(engine, store, programs, reference or engine_reference, clock,
                                   submit_for_approval=submit_for_approval)
        system = System(engine, store, scheduler)
        running.append(system)
        return system

    yield make
    for system in running:
        if system.closed:
            continue
        await system.scheduler.stop()
        await system.engine.stop()
        report = await system.store.verify()
        assert report.ok, report.problem
        await system.store.close()
    running.clear()


async def shut(system: System) -> None:
    """Stop everything in order (the next ``open_system`` reopens the same database)."""
    await system.scheduler.stop()
    await system.engine.stop()
    report = await system.store.verify()
    assert report.ok, report.problem
    await system.store.close()
    system.closed = True
