"""Fixtures for the adapter tests; helpers live in ``sim_helpers``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain.pricing import MarketSnapshot
from tests.adapters.sim_helpers import Inbox, snapshot, start_dealers


@pytest.fixture
async def make_dealers() -> AsyncIterator[Callable[..., Any]]:
    """``await make_dealers({"a": fast()})`` -> started (SimulatedDealers, Inbox), closed after."""
    started: list[SimulatedDealers] = []

    async def build(
        dealers: dict[str, SimulatedDealerConfig],
        market: Callable[[], MarketSnapshot] = snapshot,
    ) -> tuple[SimulatedDealers, Inbox]:
        sim, inbox = await start_dealers(dealers, market)
        started.append(sim)
        return sim, inbox

    yield build
    for sim in started:
        await sim.close()
