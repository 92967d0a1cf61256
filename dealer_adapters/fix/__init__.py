"""OTC desks over FIX 4.4: QuoteRequest, Quote, an award as QuoteResponse or NewOrderSingle.

The session and the message mapping, tag by tag, are ``docs/dealers-fix.md``. Each desk is
configured by a ``FixDealerConfig`` (one ``[dealers.fix]`` table); ``FixDealers`` serves
them all behind the ``DealerAdapter`` protocol, one initiator session per desk.

Importing this package (or ``dealer_adapters.fix.config``, to validate a config file)
imports no session code: the adapter is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dealer_adapters.fix.config import FixDealerConfig, TlsSettings, instrument_key

if TYPE_CHECKING:
    from dealer_adapters.fix.adapter import FIX_LOOKUP, FixDealers

__all__ = ["FIX_LOOKUP", "FixDealerConfig", "FixDealers", "TlsSettings", "instrument_key"]

_LAZY = {"FIX_LOOKUP": "dealer_adapters.fix.adapter", "FixDealers": "dealer_adapters.fix.adapter"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
