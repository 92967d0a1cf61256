"""The pure parts: market matching by structure, book walks, orientation, client ids, error
mapping, float boundary, TCA. Every expected number is computed by hand in the comment."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from dealer_adapters.ccxt import ErrorKind, classify, client_id
from rfq_engine.domain import Direction, Leg, QuoteSide, Side, ValidationError, instrument_from_dict
from rfq_engine.domain.venue import (
    PRECISION_DECIMAL_PLACES,
    PRECISION_TICK_SIZE,
    BookLevel,
    NoMarket,
    OrderBook,
    VenueMarket,
    match_market,
    package_price,
    requester_leg_side,
    venue_decimal,
    walk_book,
)
from rfq_engine.pricing.reference import PackageReference
from rfq_engine.pricing.tca import slippage_bps, tca

EXPIRY = date(2027, 3, 26)
EXP_MS = int(datetime(2027, 3, 26, 8, tzinfo=UTC).timestamp() * 1000)


def market(**fields: Any) -> VenueMarket:
    raw: dict[str, Any] = {"symbol": "BTC/USDT", "id": "BTC-USDT", "type": "spot", "base": "BTC",
                           "quote": "USDT", "settle": None, "active": True, "contractSize": None,
                           "precision": {"amount": 0.00000001, "price": 0.1}, "taker": 0.001,
                           "limits": {"amount": {"min": 0.00001}}}
    raw.update(fields)
    parsed = VenueMarket.from_ccxt(raw, PRECISION_TICK_SIZE)
    assert parsed is not None
    return parsed


SPOT = market()
SWAP = market(symbol="BTC/USDT:USDT", id="BTC-USDT-SWAP", type="swap", settle="USDT", linear=True,
              inverse=False, contractSize=0.01, precision={"amount": 0.01, "price": 0.1})
INVERSE_SWAP = market(symbol="BTC/USD:BTC", id="BTC-USD-SWAP", type="swap", quote="USD", settle="BTC",
                      linear=False, inverse=True, contractSize=100)
FUTURE = market(symbol="BTC/USDT:USDT-270326", id="BTC-USDT-270326", type="future", settle="USDT",
                linear=True, inverse=False, contractSize=0.01, expiry=EXP_MS)
# binance-style (eapi) linear option and deribit-style inverse option, as ccxt structures them
LINEAR_PUT = market(symbol="BTC/USDT:USDT-270326-35000-P", id="BTC-270326-35000-P", type="option",
                    settle="USDT", linear=True, inverse=False, contractSize=1, expiry=EXP_MS,
                    strike=35000.0, optionType="put")
INVERSE_CALL = market(symbol="BTC/USD:BTC-270326-50000-C", id="BTC-26MAR27-50000-C", type="option",
                      quote="USD", settle="BTC", linear=False, inverse=True, contractSize=1,
                      expiry=EXP_MS, strike=50000, optionType="call")
MARKETS = [SPOT, SWAP, INVERSE_SWAP, FUTURE, LINEAR_PUT, INVERSE_CALL]


def inst(kind: str, quote: str = "USDT", **extra: Any) -> Any:
    return instrument_from_dict({"kind": kind, "underlying": "BTC", "quote_ccy": quote, **extra})


# --- market matching ------------------------------------------------------------------------


def test_instruments_map_to_markets_by_structure() -> None:
    assert match_market(inst("spot"), MARKETS) == SPOT
    assert match_market(inst("perpetual"), MARKETS) == SWAP
    assert match_market(inst("future", expiry="2027-03-26"), MARKETS) == FUTURE
    put = inst("option", expiry="2027-03-26", strike="35000", option_type="put")
    assert match_market(put, MARKETS) == LINEAR_PUT
    assert SWAP.contract_size == D("0.01") and SWAP.amount_step == D("0.01")
    assert FUTURE.expiry == EXPIRY


@pytest.mark.parametrize(("instrument", "reason"), [
    (inst("future", expiry="2027-03-27"), "future BTC/USDT expiring 2027-03-27 is not listed"),
    (inst("option", expiry="2027-03-26", strike="35000", option_type="call"), "is not listed"),
    (inst("option", expiry="2027-03-26", strike="36000", option_type="put"), "is not listed"),
    (inst("perpetual", quote="USD"), "listed only as an inverse contract (BTC/USD:BTC"),
    (inst("option", quote="USD", expiry="2027-03-26", strike="50000", option_type="call"), "inverse"),
    (instrument_from_dict({"kind": "hashprice_ndf", "underlying": "HASHPRICE", "quote_ccy": "USD",
                           "start": "2027-01-01", "days": 30}), "not an exchange-listed instrument"),
])
def test_unlisted_or_unsupported_instruments_get_a_reason(instrument: Any, reason: str) -> None:
    found = match_market(instrument, MARKETS)
    assert isinstance(found, NoMarket)
    assert reason in found.reason


def test_currency_aliases_and_inactive_markets() -> None:
    usdc = market(symbol="BTC/USDC", id="BTC-USDC", quote="USDC")
    assert isinstance(match_market(inst("spot", quote="USD"), MARKETS), NoMarket)
    aliases = {"USD": ["USDC", "USDT"]}
    assert match_market(inst("spot", quote="USD"), [*MARKETS, usdc], currency_aliases=aliases) == usdc
    asleep = market(active=False)
    found = match_market(inst("spot"), [asleep])
    assert isinstance(found, NoMarket) and "not active" in found.reason


def test_decimal_places_precision_mode() -> None:
    parsed = VenueMarket.from_ccxt({"symbol": "BTC/EUR", "type": "spot", "base": "BTC", "quote": "EUR",
                                    "precision": {"amount": 4, "price": 1}}, PRECISION_DECIMAL_PLACES)
    assert parsed is not None and parsed.amount_step == D("0.0001") and parsed.price_step == D("0.1")


# --- book walks -----------------------------------------------------------------------------

BOOK = OrderBook(bids=(BookLevel(D(40000), D(5)), BookLevel(D(39990), D(10))),
                 asks=(BookLevel(D(40010), D(5)), BookLevel(D(40020), D(10))))


def test_walk_for_a_size_in_contracts_with_the_fee_on_the_right_side() -> None:
    # sell 0.1 BTC of 0.01-BTC contracts = 10: 5 @ 40000 + 5 @ 39990 -> vwap 39995;
    # a seller receives vwap * (1 - 0.0005) = 39975.0025
    sell = walk_book(BOOK, Side.SELL, D("0.1"), contract_size=D("0.01"), amount_step=D("0.01"),
                     taker_fee=D("0.0005"))
    assert sell is not None
    assert (sell.contracts, sell.quantity, sell.vwap) == (D(10), D("0.1"), D(39995))
    assert sell.price == D("39975.0025") and sell.limit_price == D(39990) and sell.complete
    # buy: 5 @ 40010 + 5 @ 40020 -> 40015; a buyer pays 40015 * 1.0005 = 40035.0075
    buy = walk_book(BOOK, Side.BUY, D("0.1"), contract_size=D("0.01"), taker_fee=D("0.0005"))
    assert buy is not None and buy.vwap == D(40015) and buy.price == D("40035.0075")
    assert buy.limit_price == D(40020) and buy.levels == 2


def test_a_thin_book_fills_what_it_holds_and_says_so() -> None:
    # 0.2 BTC = 20 contracts, the bids hold 15: 5 @ 40000 + 10 @ 39990 = (200000 + 399900) / 15
    fill = walk_book(BOOK, Side.SELL, D("0.2"), contract_size=D("0.01"))
    assert fill is not None and not fill.complete
    assert fill.contracts == D(15) and fill.quantity == D("0.15")
    assert fill.vwap == D(599900) / D(15)
    assert walk_book(OrderBook((), ()), Side.BUY, D(1)) is None


def test_lot_steps_keep_the_size_whole() -> None:
    # 0.123 BTC of 0.01 contracts in whole lots of 1 -> 12 contracts (0.12), not complete
    fill = walk_book(BOOK, Side.BUY, D("0.123"), contract_size=D("0.01"), amount_step=D(1))
    assert fill is not None and fill.contracts == D(12) and fill.quantity == D("0.12")
    assert not fill.complete
    # book levels off the step: 2.5 + 0.7 = 3.2 held, step 1 -> 3 taken, the deepest level gives back 0.2
    odd = OrderBook(bids=(), asks=(BookLevel(D(100), D("2.5")), BookLevel(D(101), D("0.7"))))
    fill = walk_book(odd, Side.BUY, D(10), amount_step=D(1))
    assert fill is not None and fill.contracts == D(3)
    assert fill.vwap == (D("2.5") * 100 + D("0.5") * 101) / 3


def test_order_book_from_ccxt_floats_sorts_and_drops_empty_levels() -> None:
    book = OrderBook.from_ccxt({"bids": [[39990.1, 1.0], [40000.3, 0.1], [39000.0, 0.0]],
                                "asks": [[40010.2, 2.0]], "timestamp": 1_800_000_000_000})
    assert [lv.price for lv in book.bids] == [D("40000.3"), D("39990.1")]
    assert book.mid() == (D("40000.3") + D("40010.2")) / 2
    assert book.timestamp == datetime.fromtimestamp(1_800_000_000, tz=UTC)


def test_venue_decimal_goes_through_str_never_the_binary_expansion() -> None:
    assert venue_decimal(0.1, "x") == D("0.1")
    assert venue_decimal(40010.55, "x") == D("40010.55")
    for bad in (None, True, float("nan"), float("inf"), "abc"):
        with pytest.raises(ValidationError):
            venue_decimal(bad, "x")


# --- orientation ----------------------------------------------------------------------------


def test_package_orientation_for_one_leg_and_for_two_way() -> None:
    sell_leg = Leg(inst("perpetual"), Side.SELL)
    assert requester_leg_side(Direction.SELL, QuoteSide.BID, sell_leg) is Side.SELL
    buy_leg = Leg(inst("perpetual"), Side.BUY)
    # two-way legs are written as buying the package: the bid side flips them
    assert requester_leg_side(Direction.TWO_WAY, QuoteSide.ASK, buy_leg) is Side.BUY
    assert requester_leg_side(Direction.TWO_WAY, QuoteSide.BID, buy_leg) is Side.SELL
    # a collar bought: +put - call; on the ask side what the requester pays
    assert package_price(QuoteSide.ASK, [(Side.BUY, D(1), D(900)), (Side.SELL, D(1), D(1000))]) == D(-100)
    assert package_price(QuoteSide.BID, [(Side.SELL, D(2), D(10))]) == D(20)


# --- client order ids and error mapping ------------------------------------------------------


def test_client_order_ids_are_deterministic_and_fit_the_venue() -> None:
    first = client_id("4f0c1a8e-0d3c-4bfe-9b34-2a7c6a5d9e11", "rfq", 32)
    assert first == client_id("4f0c1a8e-0d3c-4bfe-9b34-2a7c6a5d9e11", "rfq", 32)
    assert len(first) == 32 and first.isalnum() and first[0].isalpha() and first.startswith("rfq")
    assert first != client_id("4f0c1a8e-0d3c-4bfe-9b34-2a7c6a5d9e12", "rfq", 32)
    assert len(client_id("x", "rfq", 19)) == 19
    assert client_id("x", "9-z", 20)[0].isalpha()


def test_ccxt_errors_map_to_what_the_adapter_does() -> None:
    import ccxt.async_support as ccxt

    assert classify(ccxt.RequestTimeout("t")) is ErrorKind.RETRYABLE
    assert classify(ccxt.ExchangeNotAvailable("down")) is ErrorKind.RETRYABLE
    assert classify(ccxt.NetworkError("n")) is ErrorKind.RETRYABLE
    assert classify(TimeoutError()) is ErrorKind.RETRYABLE
    assert classify(ccxt.RateLimitExceeded("slow down")) is ErrorKind.RATE_LIMIT
    assert classify(ccxt.InsufficientFunds("no money")) is ErrorKind.REJECTED
    assert classify(ccxt.InvalidOrder("bad")) is ErrorKind.REJECTED
    assert classify(ccxt.AuthenticationError("key")) is ErrorKind.AUTH
    assert classify(ccxt.PermissionDenied("ip")) is ErrorKind.AUTH
    assert classify(ccxt.ExchangeError("?")) is ErrorKind.UNKNOWN


# --- TCA --------------------------------------------------------------------------------------


def test_tca_slippage_vs_mid_at_request_and_at_award() -> None:
    at_request = PackageReference(D(40000), D(40000), datetime.now(UTC), "ccxt:okx:mid", (D(40000),))
    at_award = {"value": "40020", "underlying_price": "40020"}
    # sold at 39980: 20 below the request mid = -5 bps; 40 below the award mid of 40020:
    # 40 / 40020 * 10000 = 9.9950025 -> -10.00 bps; the mid itself moved +20 = +5 bps for a seller
    result = tca("bid", D(39980), at_request, at_award)
    assert result == {"vs_request_bps": "-5", "vs_award_bps": "-10", "market_move_bps": "5"}
    # bought at 39980 vs a 40000 mid: +5 bps better for the requester
    assert slippage_bps(QuoteSide.ASK, D(39980), at_request) == D("5.00")
    assert tca("ask", D(1), None) == {"vs_request_bps": None, "vs_award_bps": None, "market_move_bps": None}
