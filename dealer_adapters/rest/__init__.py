"""OTC desks over HTTPS: request-for-quote, then a fill-or-kill order on the quote.

The HTTP contract a desk (or a thin gateway in front of it) implements is
``docs/dealers-rest.md``. Each desk is configured by a ``RestDealerConfig`` (one
``[dealers.rest]`` table); ``RestDealers`` serves them all behind the ``DealerAdapter``
protocol.

Importing this package (or ``dealer_adapters.rest.config``, to validate a config file)
does not import aiohttp: the adapter and the HTTP client are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dealer_adapters.rest.config import BearerAuth, HmacAuth, RestDealerConfig, instrument_key

if TYPE_CHECKING:
    from dealer_adapters.rest.adapter import REFUSED_STATUSES, RestDealers
    from dealer_adapters.rest.client import DeskClient, DeskResponse, Signer, hmac_signature

__all__ = [
    "REFUSED_STATUSES",
    "BearerAuth",
    "DeskClient",
    "DeskResponse",
    "HmacAuth",
    "RestDealerConfig",
    "RestDealers",
    "Signer",
    "hmac_signature",
    "instrument_key",
]

_LAZY = {
    "REFUSED_STATUSES": "dealer_adapters.rest.adapter",
    "RestDealers": "dealer_adapters.rest.adapter",
    "DeskClient": "dealer_adapters.rest.client",
    "DeskResponse": "dealer_adapters.rest.client",
    "Signer": "dealer_adapters.rest.client",
    "hmac_signature": "dealer_adapters.rest.client",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
