"""Exchanges as dealers through ccxt: quotes from order books, IOC execution, convert and
OKX block RFQ (``docs/dealers-ccxt.md``).

Importing this package does not import ccxt: the exchange library is imported when a
configured dealer starts (``exchange.create_exchange``).
"""

from dealer_adapters.ccxt.adapter import CcxtDealers
from dealer_adapters.ccxt.config import CcxtDealerConfig
from dealer_adapters.ccxt.journal import Journal, JournalEntry, JournalError
from dealer_adapters.ccxt.route import ErrorKind, Outcome, classify, client_id

__all__ = [
    "CcxtDealerConfig",
    "CcxtDealers",
    "ErrorKind",
    "Journal",
    "JournalEntry",
    "JournalError",
    "Outcome",
    "classify",
    "client_id",
]
