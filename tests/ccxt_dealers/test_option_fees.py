"""Bybit's and Binance's published options fee schedules (``units.BYBIT_OPTION_FEES``,
``units.BINANCE_OPTION_FEES``): a fraction of the underlying at the venue's index, capped at a
fraction of the premium, on the venues' own worked examples and through a real ccxt against
the fakes (the quote's fee, and the fee the venue charged, to the cent).

- Bybit: "Trading Fee = Minimum (Taker/Maker Fee Rate x Index Price, Maximum Proportion of
  Transaction in Order Price x Option Traded Price) x Option Traded Size", taker 0.03%, at most
  7% of the option price (https://www.bybit.com/en/help-center/article/Bybit-Option-Fees-Explained).
- Binance: "Trading Fee = Minimum (Trading Fee Rate * Index Price * Contract Unit, 10% * Option
  Traded Price) * Option Traded Size", 0.03%
  (https://www.binance.com/en/support/faq/binance-options-trading-fees-5326e5de61c34fed98abe28d2f175a23).
"""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from dealer_adapters.ccxt import CcxtDealers
from dealer_adapters.ccxt.units import BINANCE_OPTION_FEES, BYBIT_OPTION_FEES, DERIBIT_OPTION_FEES, OptionFees
from rfq_engine.domain import DealerId, DealerStatus, ExecutionConfirm, Quote, QuoteSide
from rfq_engine.domain.premium import option_fee
from tests.ccxt_dealers.conformance.venues import VENUES, option
from tests.ccxt_dealers.conftest import Inbox, award_for, leg, rfq
from tests.ccxt_dealers.fake_binance import option_symbol
from tests.ccxt_dealers.fake_bybit import option_name


def fee(schedule: OptionFees, premium: str, index: str, size: str = "1") -> D:
    assert schedule.underlying_rate is not None
    return option_fee(D(premium), underlying_rate=schedule.underlying_rate, cap_rate=schedule.cap_rate,
                      underlying=D(size), underlying_price=D(index))


def test_the_venues_own_worked_examples_to_the_cent() -> None:
    # Bybit's: min(0.03% x 42,000 = 12.6, 7% x 3,000 = 210) x 0.3 BTC = 3.78 USDC (at the taker rate)
    assert fee(BYBIT_OPTION_FEES, "3000", "42000", "0.3") == D("3.78")
    # Binance's: min(0.03% x 2,000 = 0.6, 10% x 1,000 = 100) x 3 contracts = 1.8 USDT
    assert fee(BINANCE_OPTION_FEES, "1000", "2000", "3") == D("1.8")
    # the caps: a 100 USDC option at a 60,000 index pays 7 (Bybit) and 10 (Binance), not 18
    assert fee(BYBIT_OPTION_FEES, "100", "60000") == D(7)
    assert fee(BINANCE_OPTION_FEES, "100", "60000") == D(10)
    assert fee(BYBIT_OPTION_FEES, "950", "60000") == fee(BINANCE_OPTION_FEES, "950", "60000") == D(18)
    # a coin premium is priced in its own coin: the underlying is worth 1 (Deribit, unchanged)
    assert fee(DERIBIT_OPTION_FEES, "0.015", "1") == D("0.0003")
    with pytest.raises(ValueError, match="positive size and price"):
        fee(BYBIT_OPTION_FEES, "100", "0")


@pytest.mark.parametrize(("venue", "symbol", "quote_ccy", "index", "ask", "size", "price", "charged"), [
    # Bybit: 100 USDC asked; min(0.03% x 60,000 = 18, 7% of 100 = 7) = 7 per BTC: 107; 1 BTC pays 7
    ("bybit", option_name, "USD", "60000", "100", "1", D(107), "7"),
    # Bybit, not capped: 950 + min(18, 66.5) = 968
    ("bybit", option_name, "USD", "60000", "950", "1", D(968), "18"),
    # Binance: 100 USDT asked; min(18, 10% of 100 = 10) = 10 per BTC: 110; 0.5 BTC pays 5 USDT
    ("binance", option_symbol, "USDT", "60000", "100", "0.5", D(110), "5"),
    # at a 20,000 index: min(6, 10) = 6 per BTC: 106; 0.5 BTC pays 3 USDT
    ("binance", option_symbol, "USDT", "20000", "100", "0.5", D(106), "3"),
])
async def test_a_linear_option_is_quoted_and_charged_by_the_venues_schedule_at_its_index(
        venue: str, symbol: object, quote_ccy: str, index: str, ask: str, size: str, price: D, charged: str,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.ccxt_dealers.conftest import OPTION_EXPIRY

    spec = VENUES[venue]
    for key, value in spec.env.items():
        monkeypatch.setenv(key, value)
    fake = spec.make()
    fake.index_price = D(index)
    assert callable(symbol)
    fake.set_book(symbol(OPTION_EXPIRY), bids=[], asks=[(ask, "5")])
    await fake.start()
    dealer = DealerId(f"{venue}-book")
    dealers = CcxtDealers({dealer: spec.config(fake, tmp_path)})
    inbox = Inbox()
    try:
        await dealers.start(inbox)
        dealers.exchange(dealer).timeout_on_exit = 0
        assert all(s.online for s in inbox.of(DealerStatus))
        await dealers.send_rfq(dealer, rfq([leg({**option("put"), "quote_ccy": quote_ccy}, side="buy")],
                                           quantity=size, direction="buy"))
        quote: Quote = await inbox.next(Quote)
        assert quote.ask == price and quote.conversion is None  # USDC/USDT: no conversion
        await dealers.send_award(dealer, award_for(quote, side=QuoteSide.ASK))
        confirm: ExecutionConfirm = await inbox.next(ExecutionConfirm)
        entry = dealers.journal_entry(dealer, confirm.execution_id)
        assert entry is not None and entry.outcome is not None
        assert D(entry.outcome["details"]["fee"]) == D(charged)  # what the venue charged
        assert D(entry.outcome["details"]["all_in"]) == price and fake.executed == 1
    finally:
        await dealers.close()
        await fake.stop()
