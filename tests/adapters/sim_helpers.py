"""Helpers for driving ``SimulatedDealers`` with real asyncio (no mocks).

``Inbox`` is the engine's sink: an ``asyncio.Queue`` the tests await with a timeout,
so a test waits exactly as long as the desk's latency and fails fast if nothing comes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain import (
    Award,
    DealerId,
    DealerStatus,
    Direction,
    ExecutionId,
    Future,
    Inbound,
    Leg,
    Option,
    OptionType,
    Quote,
    QuoteSide,
    RfqId,
    RfqNew,
    Side,
    new_id,
    utc_now,
)
from rfq_engine.domain.pricing import MarketSnapshot

TODAY = date(2026, 11, 21)
SPOT = Decimal(40000)
DEC_FUT = Future("BTC", "USD", date(2026, 12, 25))
MAR_FUT = Future("BTC", "USD", date(2027, 3, 26))
PUT_35K = Option("BTC", "USD", date(2027, 2, 26), Decimal(35000), OptionType.PUT)
CALL_50K = Option("BTC", "USD", date(2027, 2, 26), Decimal(50000), OptionType.CALL)

T = TypeVar("T")


def snapshot(**overrides: Any) -> MarketSnapshot:
    fields: dict[str, Any] = {
        "spot": {"BTC": SPOT},
        "vol": {"BTC": Decimal("0.55")},
        "rate": Decimal("0.05"),
        "as_of": datetime(2026, 11, 21, 10, tzinfo=UTC),
        "hashprice": Decimal("60"),
    }
    fields.update(overrides)
    return MarketSnapshot(**fields)


def future_legs(side: Side = Side.SELL) -> tuple[Leg, ...]:
    return (Leg(DEC_FUT, side),)


def collar_legs() -> tuple[Leg, ...]:
    """Buy the 35k put, sell the 50k call (as the miner buys the package)."""
    return (Leg(PUT_35K, Side.BUY), Leg(CALL_50K, Side.SELL))


def rfq(
    legs: tuple[Leg, ...] | None = None,
    direction: Direction = Direction.SELL,
    quantity: str = "10",
    *,
    allow_partial: bool = False,
    quantity_unit: str = "BTC",
    close_policy: str = "all_answered",
) -> RfqNew:
    return RfqNew(
        rfq_id=RfqId(new_id()),
        legs=legs if legs is not None else future_legs(),
        quantity=Decimal(quantity),
        quantity_unit=quantity_unit,
        direction=direction,
        allow_partial=allow_partial,
        deadline=utc_now() + timedelta(seconds=5),
        close_policy=close_policy,
    )


def fast(**overrides: Any) -> SimulatedDealerConfig:
    """A desk that answers in ~1 ms, deterministic, no randomness unless asked."""
    fields: dict[str, Any] = {
        "latency_ms": 1.0,
        "latency_jitter_ms": 0.0,
        "confirm_latency_ms": 1.0,
        "seed": 1,
    }
    fields.update(overrides)
    return SimulatedDealerConfig.model_validate(fields)


class Inbox:
    """The engine side: every inbound message lands in a queue the test awaits."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Inbound] = asyncio.Queue()
        self.statuses: asyncio.Queue[DealerStatus] = asyncio.Queue()

    def sink(self, message: Inbound) -> None:
        if isinstance(message, DealerStatus):
            self.statuses.put_nowait(message)
        else:
            self.queue.put_nowait(message)

    async def status(self, within: float = 2.0) -> DealerStatus:
        return await asyncio.wait_for(self.statuses.get(), within)

    async def get(self, kind: type[T], within: float = 2.0) -> T:
        message = await asyncio.wait_for(self.queue.get(), within)
        assert isinstance(message, kind), f"expected {kind.__name__}, got {message!r}"
        return message

    def empty(self) -> bool:
        return self.queue.empty()


async def start_dealers(
    dealers: dict[str, SimulatedDealerConfig],
    market: Callable[[], MarketSnapshot] = snapshot,
) -> tuple[SimulatedDealers, Inbox]:
    sim = SimulatedDealers({DealerId(k): v for k, v in dealers.items()}, market, clock_today=lambda: TODAY)
    inbox = Inbox()
    await sim.start(inbox.sink)
    return sim, inbox


def award_for(
    quote: Quote,
    side: QuoteSide = QuoteSide.BID,
    *,
    execution_id: str | None = None,
    price: Decimal | None = None,
    quantity: Decimal | None = None,
    confirm_by: datetime | None = None,
    quantity_unit: str = "BTC",
) -> Award:
    """The award the engine would send for ``quote`` (overridable to test the desk's checks)."""
    quoted = quote.price(side)
    assert quoted is not None or price is not None
    return Award(
        rfq_id=quote.rfq_id,
        quote_id=quote.quote_id,
        dealer_id=quote.dealer_id,
        side=side,
        price=price if price is not None else quoted,  # type: ignore[arg-type]
        quantity=quantity if quantity is not None else quote.quantity,
        execution_id=ExecutionId(execution_id or new_id()),
        confirm_by=confirm_by or utc_now() + timedelta(seconds=2),
        quantity_unit=quantity_unit,
    )
