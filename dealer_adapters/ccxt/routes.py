"""The venue routes by ``mode`` (``config.CcxtDealerConfig.mode``): what the adapter builds for
each dealer when its markets are loaded.

``book`` is ``BookRoute`` (one leg, one IOC order), with multi-leg packages on a venue that
lists combos (``combos.COMBO_VENUES``: Deribit) traded as one order on the combo
(``combos.ComboBook``); elsewhere ``BookRoute`` declines a package, never legging it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dealer_adapters.ccxt.combos import COMBO_VENUES, ComboBook
from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.convert import ConvertRoute
from dealer_adapters.ccxt.deribit_block import DeribitBlockRoute
from dealer_adapters.ccxt.execution import BookRoute
from dealer_adapters.ccxt.markets import VenueMarket
from dealer_adapters.ccxt.okx_rfq import OkxRfqRoute
from dealer_adapters.ccxt.route import DeclinePlan, Outcome, QuotePlan, Route, SentQuote
from rfq_engine.domain import Award, RfqId, RfqNew

__all__ = ["ROUTES", "PackageBookRoute"]


class PackageBookRoute(BookRoute):
    """``BookRoute``, and a package (two legs or more) on its venue's combo book where it has one."""

    def __init__(self, exchange: Any, config: CcxtDealerConfig, markets: list[VenueMarket]) -> None:
        super().__init__(exchange, config, markets)
        self.combos = (ComboBook(exchange, config, self.markets, self.refused)
                       if self.venue in COMBO_VENUES else None)

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan | None:
        if self.combos is not None and len(rfq.legs) > 1:
            return await self.combos.price(rfq)
        return await super().price(rfq)

    async def prepare(self, award: Award, sent: SentQuote, rfq: RfqNew,
                      client_id: str) -> dict[str, Any] | str:
        if self.combos is not None and len(rfq.legs) > 1:
            return await self.combos.prepare(award, sent, rfq, client_id)
        return await super().prepare(award, sent, rfq, client_id)

    async def place(self, intent: dict[str, Any]) -> Outcome | None:
        if self.combos is not None and intent.get("route") == "combo":
            return await self.combos.place(intent)
        return await super().place(intent)

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None:
        if self.combos is not None and intent.get("route") == "combo":
            return await self.combos.lookup(intent)
        return await super().lookup(intent)

    async def closed(self, rfq_id: RfqId) -> None:
        if self.combos is not None:
            self.combos.closed(rfq_id)
        await super().closed(rfq_id)


ROUTES: dict[str, Callable[..., Route]] = {
    "book": PackageBookRoute, "convert": ConvertRoute, "okx_rfq": OkxRfqRoute,
    "deribit_block_rfq": DeribitBlockRoute,
}
