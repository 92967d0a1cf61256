"""Registers ``kind = "simulated"``: every simulated desk in one ``SimulatedDealers``."""

from __future__ import annotations

from collections.abc import Mapping

from dealer_adapters.kind import BuildContext, DealerKind
from dealer_adapters.protocol import DealerAdapter
from dealer_adapters.simulated.config import SimulatedDealerConfig
from rfq_engine.domain import DealerId

__all__ = ["KIND"]


def build(dealers: Mapping[DealerId, SimulatedDealerConfig], context: BuildContext) -> DealerAdapter:
    from dealer_adapters.simulated.adapter import SimulatedDealers

    return SimulatedDealers(dealers, context.market)


KIND = DealerKind("simulated", SimulatedDealerConfig, build)
