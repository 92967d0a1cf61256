"""A fill's contract terms, as its dealer stated them: how it settles (typed), an inverse
contract's notional, a coin premium's index (pure).

The ccxt dealer writes them into a fill's ``dealer_trade_id`` (``... premium=BTC index=60000
settle=BTC``, ``... notional=39500 USD settle=BTC``); ``fill_terms`` reads them back, so the
store's fill carries its settlement currency without a change to the fill's schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum

from rfq_engine.domain.errors import ValidationError

__all__ = ["ContractTerms", "SettlementKind", "fill_terms", "inverse_pnl", "settlement_kind"]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
STABLECOINS = frozenset({"USDT", "USDC", "FDUSD", "DAI", "BUSD", "USDE"})
FIAT = frozenset({"USD", "EUR"})


class SettlementKind(StrEnum):
    """What a contract settles in: the coin itself, a stablecoin, or fiat (cash)."""

    COIN = "coin"
    STABLECOIN = "stablecoin"
    FIAT = "fiat"


def settlement_kind(currency: str) -> SettlementKind | None:
    """The kind of a settlement currency; None when it is not stated. Anything that is not a
    known stablecoin or fiat currency (BTC, ETH...) is a coin."""
    code = currency.strip().upper()
    if not code:
        return None
    if code in STABLECOINS:
        return SettlementKind.STABLECOIN
    return SettlementKind.FIAT if code in FIAT else SettlementKind.COIN


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """How a fill settles, where its dealer said: the settlement currency; for an inverse
    contract, the quote-currency notional the venue executed; for an option whose premium
    was quoted in a coin, that coin and the index the premium was converted at."""

    settlement: str = ""
    """The settlement currency (``BTC`` for an inverse contract, ``USDC``, ``USDT``...)."""
    inverse: bool = False
    notional: Decimal | None = None
    """Unsigned, in the quote currency (USD): the contracts times their value. When absent,
    an inverse fill's notional is taken as ``quantity * price``."""
    contract_value: Decimal | None = None
    """One contract in the quote currency (1, 10 or 100 USD), to show the contracts."""
    premium_currency: str = ""
    """A coin premium (``BTC``): the fill's price is its conversion at ``index_price``."""
    index_price: Decimal | None = None

    @property
    def kind(self) -> SettlementKind | None:
        return settlement_kind(self.settlement)

    @property
    def coin_premium(self) -> bool:
        return bool(self.premium_currency) and self.index_price is not None and self.index_price > 0


_TERM = re.compile(r"\b(settle|notional|premium|index)=(\S+)(?: ([A-Z][A-Z0-9]*))?")


def _decimal(text: str, what: str, dealer_trade_id: str) -> Decimal:
    try:
        return Decimal(text)
    except ArithmeticError:
        raise ValidationError("dealer_trade_id", f"unreadable {what} in {dealer_trade_id!r}") from None


def fill_terms(dealer_trade_id: str) -> ContractTerms | None:
    """The terms the ccxt dealer records in a fill's ``dealer_trade_id``, or None where it says
    nothing of them (another dealer)."""
    found = {m.group(1): (m.group(2), m.group(3)) for m in _TERM.finditer(dealer_trade_id or "")}
    if not found:
        return None
    settle = found.get("settle", ("", None))[0].upper()
    premium = found.get("premium", ("", None))[0].upper()
    index = (_decimal(found["index"][0], "index", dealer_trade_id) if "index" in found else None)
    if "notional" not in found:
        return ContractTerms(settlement=settle, premium_currency=premium, index_price=index)
    notional = abs(_decimal(found["notional"][0], "notional", dealer_trade_id))
    return ContractTerms(settlement=settle, inverse=True, notional=notional)


def inverse_pnl(notional: Decimal, entry: Decimal, exit_price: Decimal) -> Decimal:
    """Coin P&L of an inverse position of signed ``notional`` (quote currency, positive long)
    entered at ``entry`` and closed (or marked) at ``exit_price``."""
    if entry <= 0 or exit_price <= 0:
        raise ValidationError("price", "an inverse contract needs positive prices")
    with localcontext(_WORK):
        return notional * (1 / entry - 1 / exit_price)
