"""Registers ``kind = "ccxt"``: one ``CcxtDealers`` for every exchange dealer (each gets its
own ccxt instance when it starts; ccxt itself is imported only then)."""

from __future__ import annotations

from collections.abc import Mapping

from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.kind import BuildContext, DealerKind
from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId

__all__ = ["KIND"]


def build(dealers: Mapping[DealerId, CcxtDealerConfig], context: BuildContext) -> DealerAdapter:
    from dealer_adapters.ccxt.adapter import CcxtDealers

    return CcxtDealers(dealers)


KIND = DealerKind("ccxt", CcxtDealerConfig, build)
