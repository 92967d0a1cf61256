"""Simulated dealer desks: an in-process ``DealerAdapter`` with a seeded quoting model.

Use it to run the engine without a broker (demos, tests, dry runs). Each desk is
configured by a ``SimulatedDealerConfig`` (one ``[dealers.simulated]`` table).
"""

from dealer_adapters.simulated.adapter import SIMULATED_LOOKUP, SimulatedDealers, SimulatedTrade
from dealer_adapters.simulated.config import DEFAULT_UNITS, SimulatedDealerConfig
from dealer_adapters.simulated.ledger import ExecutionOutcome, ExecutionRecord, Ledger, LedgerError
from dealer_adapters.simulated.model import (
    DECLINE_NO_APPETITE,
    DECLINE_NO_PRICE,
    DECLINE_NOT_QUOTED,
    DECLINE_SIZE,
    REJECT_FENCED,
    REJECT_LAST_LOOK,
    REJECT_LATE,
    DealerModel,
    SentQuote,
    quote_prices,
    unit_not_traded,
)

__all__ = [
    "DECLINE_NOT_QUOTED",
    "DECLINE_NO_APPETITE",
    "DECLINE_NO_PRICE",
    "DECLINE_SIZE",
    "DEFAULT_UNITS",
    "REJECT_FENCED",
    "REJECT_LAST_LOOK",
    "REJECT_LATE",
    "SIMULATED_LOOKUP",
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
    "unit_not_traded",
]
