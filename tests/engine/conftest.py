from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from rfq_engine.domain import RfqSpec, utc_now
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate, MandateConfig
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store.memory import InMemoryAuditStore
from tests.engine.scripted import ScriptedDealers

DEALERS = ("d1", "d2", "d3", "d4")
FUT_EXPIRY = (date.today() + timedelta(days=35)).isoformat()


def snapshot() -> MarketSnapshot:
    return MarketSnapshot(spot={"BTC": Decimal(40000)}, vol={"BTC": Decimal("0.5")},
                          rate=Decimal("0.05"), basis={}, hashprice=Decimal(55), as_of=utc_now())


def mandate_config(**overrides: Any) -> MandateConfig:
    base: dict[str, Any] = {
        "underlyings": ["BTC", "HASHPRICE"],
        "instruments": ["future", "option", "spot", "perpetual", "hashprice_ndf"],
        "max_tenor_days": 400,
        "dealers": {d: {"credit_limit": "100000000"} for d in DEALERS},
        "min_quotes": 1,
    }
    base.update(overrides)
    return MandateConfig.model_validate(base)


def future_rfq(**overrides: Any) -> RfqSpec:
    data: dict[str, Any] = {
        "legs": [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                                 "expiry": FUT_EXPIRY}, "side": "sell", "ratio": "1"}],
        "direction": "sell", "quantity": "10", "quantity_unit": "BTC",
        "dealers": list(DEALERS), "requester": "alice", "mandate": "treasury",
        "window_ms": 2000,
    }
    data.update(overrides)
    return RfqSpec.from_dict(data)


class Harness:
    def __init__(self, engine: RfqEngine, dealers: ScriptedDealers, store: InMemoryAuditStore):
        self.engine = engine
        self.dealers = dealers
        self.store = store

    async def types(self, rfq_id: str) -> list[str]:
        from rfq_engine.store.base import EventFilter
        return [e.type for e in await self.store.events(EventFilter(rfq_id=rfq_id))]

    async def payloads(self, rfq_id: str, type_: str) -> list[dict[str, Any]]:
        from rfq_engine.store.base import EventFilter
        return [e.payload for e in await self.store.events(EventFilter(rfq_id=rfq_id, types=[type_]))]


MakeHarness = Callable[..., Any]


@pytest.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    made: list[Harness] = []

    async def make(*, mandate: MandateConfig | None = None, config: EngineConfig | None = None,
                   ids: tuple[str, ...] = DEALERS) -> Harness:
        store = InMemoryAuditStore()
        await store.open()
        dealers = ScriptedDealers(ids)
        engine = RfqEngine(
            store=store, adapters=[dealers],
            mandates={"treasury": Mandate("treasury", mandate or mandate_config())},
            reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
            config=config or EngineConfig(confirm_timeout_ms=1000),
        )
        await engine.start()
        harness = Harness(engine, dealers, store)
        made.append(harness)
        return harness

    yield make
    for h in made:
        await h.engine.stop()
        report = await h.store.verify()
        assert report.ok, report.problem
        await h.store.close()


async def wait_state(h: Harness, rfq_id: str, state: str, timeout: float = 5) -> None:
    """Await the RFQ reaching ``state`` (through the engine's event stream, no polling)."""
    import asyncio

    from rfq_engine.engine import EngineEvent

    run = h.engine.live(rfq_id)
    if run is not None and run.state.value == state:
        return
    reached = asyncio.Event()

    def listen(event: EngineEvent) -> None:
        if event.rfq_id == rfq_id and event.type == "rfq.state_changed" and event.payload["to"] == state:
            reached.set()

    h.engine.add_listener(listen)
    try:
        run = h.engine.live(rfq_id)
        if run is None or run.state.value != state:
            await asyncio.wait_for(reached.wait(), timeout)
    finally:
        h.engine.remove_listener(listen)
