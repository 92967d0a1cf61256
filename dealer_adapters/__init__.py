"""Dealer transports behind one small protocol (``dealer_adapters.protocol``).

Heavy adapters (ccxt, MQTT) are imported lazily by ``dealer_adapters.factory`` so that
``rfq --help`` stays fast.
"""

from dealer_adapters.protocol import (
    DealerAdapter,
    DealerUnavailable,
    ExecutionLookup,
    ExecutionState,
    InboundSink,
)

__all__ = ["DealerAdapter", "DealerUnavailable", "ExecutionLookup", "ExecutionState", "InboundSink"]
