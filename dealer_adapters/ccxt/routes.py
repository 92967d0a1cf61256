"""The venue routes by ``mode`` (``config.CcxtDealerConfig.mode``): what the adapter builds for
each dealer when its markets are loaded."""

from __future__ import annotations

from collections.abc import Callable

from dealer_adapters.ccxt.convert import ConvertRoute
from dealer_adapters.ccxt.deribit_block import DeribitBlockRoute
from dealer_adapters.ccxt.execution import BookRoute
from dealer_adapters.ccxt.okx_rfq import OkxRfqRoute
from dealer_adapters.ccxt.route import Route

__all__ = ["ROUTES"]

ROUTES: dict[str, Callable[..., Route]] = {
    "book": BookRoute, "convert": ConvertRoute, "okx_rfq": OkxRfqRoute,
    "deribit_block_rfq": DeribitBlockRoute,
}
