"""Simulated dealer desks: an in-process ``DealerAdapter`` with a seeded quoting model.

Use it to run the engine without a broker (demos, tests, dry runs). Each desk is
configured by a ``SimulatedDealerConfig`` (one ``[dealers.simulated]`` table).
"""

from dealer_adapters.simulated.adapter import SimulatedDealers, SimulatedTrade
from dealer_adapters.simulated.config import SimulatedDealerConfig
from dealer_adapters.simulated.ledger import ExecutionOutcome, ExecutionRecord, Ledger, LedgerError
from dealer_adapters.simulated.model import (
    DECLINE_NO_APPETITE,
    DECLINE_NO_PRICE,
    DECLINE_NOT_QUOTED,
    DECLINE_SIZE,
    REJECT_LAST_LOOK,
    REJECT_LATE,
    DealerModel,
    SentQuote,
    quote_prices,
)

__all__ = [
    "DECLINE_NOT_QUOTED",
    "DECLINE_NO_APPETITE",
    "DECLINE_NO_PRICE",
    "DECLINE_SIZE",
    "REJECT_LAST_LOOK",
    "REJECT_LATE",
    "DealerModel",
    "ExecutionOutcome",
    "ExecutionRecord",
    "Ledger",
    "LedgerError",
    "SentQuote",
    "SimulatedDealerConfig",
    "SimulatedDealers",
    "SimulatedTrade",
    "quote_prices",
]
