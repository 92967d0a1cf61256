"""What a failed order-placing call means (dealer_adapters.ccxt.route): real ccxt exceptions,
each kind's one answer. Only a refusal that proves nothing happened is a reject; refused
credentials raise (the dealer is marked down); everything else, a duplicate client order id
included (it says an order with our id exists), is an unknown fate, looked up, never re-sent;
a rate limit backs off first."""

from __future__ import annotations

import time
from decimal import Decimal

import ccxt
import pytest
import structlog

from dealer_adapters.ccxt.route import ErrorKind, Outcome, classify, placement_failed

PRICE = Decimal("40000")
LOG = structlog.get_logger("test")


@pytest.mark.parametrize(("error", "kind"), [
    (ccxt.InsufficientFunds("not enough margin"), ErrorKind.REJECTED),
    (ccxt.InvalidOrder("bad amount"), ErrorKind.REJECTED),
    (ccxt.BadSymbol("no such market"), ErrorKind.REJECTED),
    (ccxt.OrderImmediatelyFillable("post only"), ErrorKind.REJECTED),
    (ccxt.DuplicateOrderId("clOrdId exists"), ErrorKind.UNKNOWN),
    (ccxt.AuthenticationError("bad key"), ErrorKind.AUTH),
    (ccxt.PermissionDenied("no trading permission"), ErrorKind.AUTH),
    (ccxt.RateLimitExceeded("too many requests"), ErrorKind.RATE_LIMIT),
    (ccxt.DDoSProtection("slow down"), ErrorKind.RATE_LIMIT),
    (ccxt.RequestTimeout("timed out"), ErrorKind.RETRYABLE),
    (ccxt.ExchangeNotAvailable("maintenance"), ErrorKind.RETRYABLE),
    (TimeoutError(), ErrorKind.RETRYABLE),
    (ConnectionResetError(), ErrorKind.RETRYABLE),
    (ccxt.NullResponse("empty body"), ErrorKind.UNKNOWN),
    (ccxt.ExchangeError("something odd"), ErrorKind.UNKNOWN),
])
def test_each_error_has_one_meaning(error: Exception, kind: ErrorKind) -> None:
    assert classify(error) is kind


async def test_a_refusal_is_a_reject_at_the_awarded_price_saying_why() -> None:
    outcome = await placement_failed(ccxt.InsufficientFunds("balance 0.1 BTC"), PRICE, "okx refused",
                                     log=LOG, event="order_failed", backoff_ms=0)
    assert isinstance(outcome, Outcome) and not outcome.confirmed
    assert outcome.price == PRICE and outcome.reason.startswith("okx refused: ")
    assert "balance 0.1 BTC" in outcome.reason


async def test_refused_credentials_raise_again() -> None:
    error = ccxt.AuthenticationError("invalid signature")
    with pytest.raises(ccxt.AuthenticationError):
        await placement_failed(error, PRICE, "refused", log=LOG, event="order_failed", backoff_ms=0)


@pytest.mark.parametrize("error", [ccxt.RequestTimeout("timed out"), ccxt.DuplicateOrderId("exists"),
                                   ccxt.ExchangeError("odd")])
async def test_a_call_that_may_have_reached_the_venue_is_an_unknown_fate(error: Exception) -> None:
    kind = await placement_failed(error, PRICE, "refused", log=LOG, event="order_failed", backoff_ms=0)
    assert isinstance(kind, ErrorKind) and kind in (ErrorKind.RETRYABLE, ErrorKind.UNKNOWN)


async def test_a_rate_limit_backs_off_then_is_an_unknown_fate() -> None:
    started = time.monotonic()
    kind = await placement_failed(ccxt.RateLimitExceeded("429"), PRICE, "refused", log=LOG,
                                  event="order_failed", backoff_ms=150)
    assert kind is ErrorKind.RATE_LIMIT and time.monotonic() - started >= 0.15
