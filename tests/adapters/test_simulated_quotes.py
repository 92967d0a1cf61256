"""Quoting: sides per direction, the price model, declines, silence, size limits, logs."""

from __future__ import annotations

import asyncio
from datetime import UTC
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import pytest

from dealer_adapters.simulated import (
    DECLINE_NO_APPETITE,
    DECLINE_NO_PRICE,
    DECLINE_NOT_QUOTED,
    DECLINE_SIZE,
)
from rfq_engine.domain import (
    DealerId,
    Decline,
    Direction,
    Future,
    InstrumentKind,
    Leg,
    Package,
    Quote,
    RfqClosed,
    Side,
)
from rfq_engine.domain.pricing import package_value
from tests.adapters.sim_helpers import (
    CALL_50K,
    SPOT,
    TODAY,
    collar_legs,
    fast,
    future_legs,
    rfq,
    snapshot,
)

A, B = DealerId("desk-a"), DealerId("desk-b")
TICK = Decimal("0.01")


def expected(legs: tuple[Leg, ...], direction: Direction, spread_bps: int, skew_bps: int = 0):
    value = package_value(Package(legs), direction, snapshot(), TODAY)
    half = SPOT * spread_bps / Decimal(10_000) / 2
    skew = SPOT * skew_bps / Decimal(10_000)
    bid = ((value - half + skew) / TICK).to_integral_value(ROUND_FLOOR) * TICK
    ask = ((value + half - skew) / TICK).to_integral_value(ROUND_CEILING) * TICK
    return value, bid, ask


@pytest.mark.parametrize(
    ("direction", "has_bid", "has_ask"),
    [(Direction.SELL, True, False), (Direction.BUY, False, True), (Direction.TWO_WAY, True, True)],
)
async def test_one_way_rfqs_get_only_the_needed_side(make_dealers, direction, has_bid, has_ask):
    sim, inbox = await make_dealers({A: fast(spread_bps=20)})
    side = Side.SELL if direction is Direction.SELL else Side.BUY
    legs = future_legs(side)
    message = rfq(legs, direction)
    await sim.send_rfq(A, message)
    quote = await inbox.get(Quote)
    _, bid, ask = expected(legs, direction, 20)
    assert quote.rfq_id == message.rfq_id and quote.dealer_id == A
    assert quote.bid == (bid if has_bid else None)
    assert quote.ask == (ask if has_ask else None)
    assert quote.quantity == message.quantity


async def test_collar_net_quote_is_value_plus_minus_half_spread_of_spot(make_dealers):
    sim, inbox = await make_dealers({A: fast(spread_bps=20)})
    legs = collar_legs()
    await sim.send_rfq(A, rfq(legs, Direction.TWO_WAY))
    quote = await inbox.get(Quote)
    value, bid, ask = expected(legs, Direction.TWO_WAY, 20)
    assert quote.bid == bid and quote.ask == ask
    # half spread = 40000 * 20 bps / 2 = 40, whatever the (near-zero) net premium
    assert value - Decimal(40) - TICK < quote.bid <= value - Decimal(40)
    assert value + Decimal(40) <= quote.ask < value + Decimal(40) + TICK
    assert abs(value) < SPOT * Decimal("0.05")  # the collar is worth little next to its spread base


async def test_positive_skew_is_generous_on_both_sides(make_dealers):
    sim, inbox = await make_dealers({A: fast(spread_bps=20, skew_bps=5)})
    legs = future_legs(Side.BUY)
    await sim.send_rfq(A, rfq(legs, Direction.TWO_WAY))
    quote = await inbox.get(Quote)
    _, bid, ask = expected(legs, Direction.TWO_WAY, 20, skew_bps=5)
    _, plain_bid, plain_ask = expected(legs, Direction.TWO_WAY, 20)
    assert (quote.bid, quote.ask) == (bid, ask)
    assert quote.bid > plain_bid and quote.ask < plain_ask
    assert quote.bid < quote.ask


async def test_quote_ids_timestamps_and_validity(make_dealers):
    sim, inbox = await make_dealers({A: fast(quote_validity_ms=1500)})
    await sim.send_rfq(A, rfq())
    await sim.send_rfq(A, rfq())
    first, second = await inbox.get(Quote), await inbox.get(Quote)
    assert first.quote_id != second.quote_id and first.msg_id != second.msg_id
    for quote in (first, second):
        assert quote.received_at.tzinfo is UTC
        lifetime = (quote.valid_until - quote.received_at).total_seconds()
        assert 1.4 < lifetime <= 1.5


async def test_decline_rate_one_always_declines(make_dealers):
    sim, inbox = await make_dealers({A: fast(decline_rate=1.0)})
    for _ in range(5):
        message = rfq()
        await sim.send_rfq(A, message)
        decline = await inbox.get(Decline)
        assert decline.rfq_id == message.rfq_id and decline.reason == DECLINE_NO_APPETITE


async def test_silence_rate_one_never_answers(make_dealers):
    # the silent desk would answer after 1 ms; the control desk answers after 30 ms,
    # so once the control's quote is in, anything the silent desk sent would be too
    sim, inbox = await make_dealers({A: fast(silence_rate=1.0), B: fast(latency_ms=30.0)})
    message = rfq()
    await sim.send_rfq(A, message)
    await sim.send_rfq(B, message)
    quote = await inbox.get(Quote)
    assert quote.dealer_id == B
    assert inbox.empty()
    assert sim.received(A) == (message,)


async def test_instrument_not_quoted_is_declined(make_dealers):
    sim, inbox = await make_dealers({A: fast(instruments=["future", "spot"])})
    await sim.send_rfq(A, rfq(collar_legs(), Direction.BUY))
    assert (await inbox.get(Decline)).reason == DECLINE_NOT_QUOTED
    await sim.send_rfq(A, rfq())
    await inbox.get(Quote)


async def test_max_quantity_quotes_partial_when_allowed(make_dealers):
    sim, inbox = await make_dealers({A: fast(max_quantity="25")})
    await sim.send_rfq(A, rfq(quantity="100", allow_partial=True))
    assert (await inbox.get(Quote)).quantity == Decimal(25)
    await sim.send_rfq(A, rfq(quantity="100", allow_partial=False))
    assert (await inbox.get(Decline)).reason == DECLINE_SIZE
    await sim.send_rfq(A, rfq(quantity="25"))
    assert (await inbox.get(Quote)).quantity == Decimal(25)


async def test_missing_market_data_is_a_decline_not_an_error(make_dealers):
    sim, inbox = await make_dealers({A: fast()})
    eth = (Leg(Future("ETH", "USD", CALL_50K.expiry), Side.SELL),)
    await sim.send_rfq(A, rfq(eth))
    decline = await inbox.get(Decline)
    assert decline.reason.startswith(DECLINE_NO_PRICE) and "ETH" in decline.reason


async def test_a_broken_market_feed_is_a_decline(make_dealers):
    def broken():
        raise RuntimeError("feed down")

    sim, inbox = await make_dealers({A: fast()}, market=broken)
    await sim.send_rfq(A, rfq())
    assert "feed down" in (await inbox.get(Decline)).reason


async def test_received_log_records_what_each_dealer_saw(make_dealers):
    sim, inbox = await make_dealers({A: fast(), B: fast()})
    message = rfq(future_legs(Side.BUY), Direction.TWO_WAY)
    await sim.send_rfq(A, message)
    await sim.send_rfq(B, message)
    await inbox.get(Quote)
    await inbox.get(Quote)
    closed = RfqClosed(message.rfq_id, "not_filled", you_won=False)
    await sim.send_closed(A, closed)
    seen = sim.received(A)
    assert seen == (message, closed)
    assert seen[0].direction is Direction.TWO_WAY  # the real side is never on the wire
    assert sim.received(B) == (message,)
    assert sim.quotes(A) == () and len(sim.quotes(B)) == 1


async def test_rfq_closed_before_the_answer_silences_the_desk(make_dealers):
    sim, inbox = await make_dealers({A: fast(latency_ms=5.0), B: fast(latency_ms=40.0)})
    message = rfq()
    await sim.send_rfq(A, message)
    await sim.send_closed(A, RfqClosed(message.rfq_id, "cancelled", you_won=False))
    await sim.send_rfq(B, rfq())
    assert (await inbox.get(Quote)).dealer_id == B
    assert inbox.empty()


async def test_close_cancels_pending_answers(make_dealers):
    sim, inbox = await make_dealers({A: fast(latency_ms=5.0)})
    await sim.send_rfq(A, rfq())
    await sim.close()
    await sim.close()  # idempotent
    other, other_inbox = await make_dealers({B: fast(latency_ms=40.0)})
    await other.send_rfq(B, rfq())
    await other_inbox.get(Quote)
    assert inbox.empty()


async def test_latency_is_respected(make_dealers):
    sim, inbox = await make_dealers({A: fast(latency_ms=60.0)})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sim.send_rfq(A, rfq())
    await inbox.get(Quote)
    assert loop.time() - started >= 0.055


async def test_status_is_announced_on_start_and_on_change(make_dealers):
    sim, inbox = await make_dealers({A: fast(instruments=["future"]), B: fast(online=False)})
    by_dealer = {s.dealer_id: s for s in [await inbox.status(), await inbox.status()]}
    assert by_dealer[A].online and by_dealer[A].instruments == (InstrumentKind.FUTURE.value,)
    assert not by_dealer[B].online
    sim.set_online(B, True)
    status = await inbox.status()
    assert status.dealer_id == B and status.online and sim.is_online(B)
