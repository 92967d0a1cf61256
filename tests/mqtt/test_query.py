"""``execution.query``, fencing, units and the extension fields over a real Mosquitto.

One execution per award, even when a confirm is lost: the engine's adapter asks the desk
(``MqttDealers.query_execution``) and the reference bot answers truthfully, fencing an id
it has no record of. Every wait here is on an event (a message, a bot event), never a sleep.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import pytest

from dealer_adapters.mqtt.adapter import MQTT_LOOKUP, MQTT_QUERY_LOOKUP, QUERY_UNKNOWN_REASON, MqttDealers
from dealer_adapters.mqtt.envelope import FEATURE_EXECUTION_QUERY, NOT_FOUND_REASON
from dealer_adapters.protocol import ExecutionState
from dealer_adapters.simulated.model import REJECT_FENCED
from rfq_engine.domain import (
    Award,
    DealerId,
    Decline,
    Direction,
    ExecutionConfirm,
    ExecutionId,
    ExecutionReject,
    Inbound,
    Quote,
    QuoteSide,
    RfqId,
    RfqNew,
    RfqState,
    new_id,
    utc_now,
)
from tests.engine.conftest import future_rfq
from tests.mqtt.conftest import MakeWorld
from tests.mqtt.kit import READY_TIMEOUT_S, World, bot_events, next_event

pytestmark = pytest.mark.slow

DESK = DealerId("desk-a")
M = TypeVar("M")


class Inbox:
    """The adapter's sink: every inbound message, awaitable by type and predicate."""

    def __init__(self) -> None:
        self.seen: list[Inbound] = []
        self._changed = asyncio.Event()

    def __call__(self, message: Inbound) -> None:
        self.seen.append(message)
        self._changed.set()

    async def next(self, kind: type[M], predicate: Callable[[M], bool] = lambda m: True) -> M:
        """The first message so far (or to come) of ``kind`` matching ``predicate``."""
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                for message in self.seen:
                    if isinstance(message, kind) and predicate(message):
                        return message
                self._changed.clear()
                await self._changed.wait()


def rfq_new(*, unit: str = "BTC", close_policy: str = "all_answered") -> RfqNew:
    spec = future_rfq()
    return RfqNew(RfqId(new_id()), spec.legs, Decimal(10), unit, Direction.SELL, False,
                  utc_now() + timedelta(seconds=30), close_policy=close_policy)


def award_for(quote: Quote, *, unit: str = "BTC", execution_id: str | None = None) -> Award:
    assert quote.bid is not None
    return Award(quote.rfq_id, quote.quote_id, quote.dealer_id, QuoteSide.BID, quote.bid, quote.quantity,
                 ExecutionId(execution_id or new_id()), utc_now() + timedelta(seconds=30),
                 quantity_unit=unit)


async def quoted(adapter: MqttDealers, inbox: Inbox, rfq: RfqNew) -> Quote:
    await adapter.send_rfq(DESK, rfq)
    return await inbox.next(Quote, lambda q: q.rfq_id == rfq.rfq_id)


async def connected(world: World) -> tuple[MqttDealers, Inbox]:
    inbox = Inbox()
    adapter = await world.adapter(inbox, dealers=("desk-a",))
    await adapter.wait_online([DESK], timeout=READY_TIMEOUT_S)
    return adapter, inbox


async def test_a_lost_confirm_is_found_by_asking_and_the_desk_executed_once(make_world: MakeWorld) -> None:
    world = await make_world()
    bot = await world.bot("desk-a", lose_confirm_rate=1.0)
    events = bot_events(bot)
    adapter, inbox = await connected(world)
    assert adapter.supports_query(DESK)
    assert adapter.lookup_policy(DESK) == MQTT_QUERY_LOOKUP
    assert MQTT_QUERY_LOOKUP.can_query and MQTT_QUERY_LOOKUP.not_found_proves_absent

    award = award_for(await quoted(adapter, inbox, rfq_new()))
    await adapter.send_award(DESK, award)
    lost = await next_event(events, "lost")  # booked and executed; the confirm never left
    assert lost.detail == award.execution_id and bot.executed_count() == 1
    assert not any(isinstance(m, ExecutionConfirm) for m in inbox.seen)

    lookup = await adapter.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED, lookup
    assert lookup.confirm is not None
    assert (lookup.confirm.execution_id, lookup.confirm.price, lookup.confirm.quantity) == (
        award.execution_id, award.price, award.quantity)
    # the answer also reached the engine's sink, as a new message
    confirm = await inbox.next(ExecutionConfirm, lambda c: c.execution_id == award.execution_id)
    assert confirm.msg_id != lost.msg_id

    # asked again, awarded again: the same answer, never a second trade
    assert (await adapter.query_execution(DESK, award.execution_id)).state is ExecutionState.CONFIRMED
    await adapter.send_award(DESK, award)
    await next_event(events, "published", "execution.confirm")  # the original confirm, re-sent
    assert bot.executed_count() == 1


async def test_a_query_during_the_booking_is_answered_once_booked(make_world: MakeWorld) -> None:
    world = await make_world()
    bot = await world.bot("desk-a", book_latency_ms=300.0, lose_confirm_rate=1.0)
    events = bot_events(bot)
    adapter, inbox = await connected(world)
    award = award_for(await quoted(adapter, inbox, rfq_new()))
    await adapter.send_award(DESK, award)
    await next_event(events, "received", "award")  # the desk is booking it now
    lookup = await adapter.query_execution(DESK, award.execution_id, timeout=READY_TIMEOUT_S)
    assert lookup.state is ExecutionState.CONFIRMED, lookup  # not "not found": it was booking
    assert bot.executed_count() == 1 and not bot.is_fenced(award.execution_id)


async def test_an_unknown_execution_is_not_found_and_fenced_for_good(make_world: MakeWorld,
                                                                    tmp_path: Path) -> None:
    world = await make_world()
    ledger = tmp_path / "desk-a.jsonl"
    bot = await world.bot("desk-a", ledger_path=ledger)
    events = bot_events(bot)
    adapter, inbox = await connected(world)
    quote = await quoted(adapter, inbox, rfq_new())
    eid = ExecutionId(new_id())

    lookup = await adapter.query_execution(DESK, eid, rfq_id=quote.rfq_id)
    assert lookup.state is ExecutionState.NOT_FOUND, lookup
    assert (await next_event(events, "fenced")).detail == eid and bot.is_fenced(eid)
    answer = await inbox.next(ExecutionReject, lambda r: r.execution_id == eid)
    assert (answer.rfq_id, answer.reason) == (quote.rfq_id, NOT_FOUND_REASON)

    # the award arrives after the answer (it was delayed on the way): rejected, never executed
    await adapter.send_award(DESK, award_for(quote, execution_id=eid))
    refused = await inbox.next(ExecutionReject, lambda r: r.execution_id == eid and r.reason == REJECT_FENCED)
    assert refused.rfq_id == quote.rfq_id
    assert bot.executed_count() == 0
    assert (await adapter.query_execution(DESK, eid)).state is ExecutionState.NOT_FOUND

    # the fence is durable: a restarted desk (same ledger) still refuses the id ...
    await bot.close()
    await adapter.wait_online([DESK], online=False, timeout=READY_TIMEOUT_S)
    bot = await world.bot("desk-a", ledger_path=ledger)
    await adapter.wait_online([DESK], timeout=READY_TIMEOUT_S)
    assert bot.is_fenced(eid)
    quote = await quoted(adapter, inbox, rfq_new())
    events = bot_events(bot)
    await adapter.send_award(DESK, award_for(quote, execution_id=eid))
    assert (await next_event(events, "fenced_award")).detail == eid
    assert bot.executed_count() == 0
    # ... and trades an award it has never been asked about
    other = award_for(quote)
    await adapter.send_award(DESK, other)
    await inbox.next(ExecutionConfirm, lambda c: c.execution_id == other.execution_id)
    assert bot.executed_count() == 1


async def test_a_desk_that_does_not_advertise_the_query_cannot_be_asked(make_world: MakeWorld) -> None:
    world = await make_world()
    bot = await world.bot("desk-a", answer_queries=False, lose_confirm_rate=1.0)
    events = bot_events(bot)
    adapter, inbox = await connected(world)
    assert not adapter.supports_query(DESK)
    policy = adapter.lookup_policy(DESK)
    assert policy == MQTT_LOOKUP and not policy.can_query and not policy.not_found_proves_absent

    award = award_for(await quoted(adapter, inbox, rfq_new()))
    await adapter.send_award(DESK, award)
    await next_event(events, "lost")
    assert bot.executed_count() == 1
    # it did execute, but nobody can find out by asking: UNKNOWN, and no query is sent
    lookup = await adapter.query_execution(DESK, award.execution_id)
    assert lookup.state is ExecutionState.UNKNOWN and lookup.reason == QUERY_UNKNOWN_REASON
    lookup = await adapter.query_execution(DESK, ExecutionId(new_id()))
    assert lookup.state is ExecutionState.UNKNOWN
    assert not bot.is_fenced(ExecutionId(award.execution_id))


async def test_the_desk_declines_a_unit_it_does_not_trade_and_rejects_an_award_in_one(
        make_world: MakeWorld) -> None:
    world = await make_world()
    bot = await world.bot("desk-a", units=["BTC"])
    adapter, inbox = await connected(world)

    rfq = rfq_new(unit="PH/s/day")
    await adapter.send_rfq(DESK, rfq)
    decline = await inbox.next(Decline, lambda d: d.rfq_id == rfq.rfq_id)
    assert decline.reason == "unit PH/s/day not traded"

    quote = await quoted(adapter, inbox, rfq_new(unit="btc"))  # units compare without case
    award = award_for(quote, unit="ETH")
    await adapter.send_award(DESK, award)
    reject = await inbox.next(ExecutionReject, lambda r: r.execution_id == award.execution_id)
    assert reject.reason == "unit ETH not traded"
    assert bot.executed_count() == 0


class RawDesk:
    """desk-a played by a bare MQTT client: it records what the engine sends and answers by hand."""

    def __init__(self, world: World, client: aiomqtt.Client) -> None:
        self.world = world
        self.client = client
        self.received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.client.messages:
            self.received.put_nowait(json.loads(bytes(message.payload)))  # type: ignore[arg-type]

    async def next(self, msg_type: str) -> dict[str, Any]:
        async with asyncio.timeout(READY_TIMEOUT_S):
            while True:
                envelope = await self.received.get()
                if envelope["type"] == msg_type:
                    return envelope

    async def send(self, msg_type: str, body: dict[str, Any], *, retain: bool = False) -> None:
        kind = "status" if msg_type == "status" else "execution"
        await self.client.publish(self.world.topics().topic("desk-a", kind),
                                  self.world.envelope("desk-a", msg_type, body), qos=1, retain=retain)


async def raw_desk(world: World, *, features: list[str]) -> RawDesk:
    client = await world.raw("desk-a")
    topics = world.topics()
    await client.subscribe([(topics.topic("desk-a", "rfq"), 1), (topics.topic("desk-a", "award"), 1)])
    desk = RawDesk(world, client)
    await desk.send("status", {"online": True, "instruments": ["future"], "features": features}, retain=True)
    return desk


async def test_the_extension_fields_and_the_query_on_the_wire(make_world: MakeWorld) -> None:
    world = await make_world(("desk-a",))
    desk = await raw_desk(world, features=[FEATURE_EXECUTION_QUERY])
    adapter, _ = await connected(world)
    try:
        assert adapter.lookup_policy(DESK).can_query

        for policy in ("deadline", "all_answered"):
            rfq = rfq_new(close_policy=policy)
            await adapter.send_rfq(DESK, rfq)
            body = (await desk.next("rfq.new"))["body"]
            assert (body["rfq_id"], body["close_policy"], body["quantity_unit"]) == (
                rfq.rfq_id, policy, "BTC")

        quote = Quote(rfq.rfq_id, DESK, new_id(), Decimal(40000), None, Decimal(10),  # type: ignore[arg-type]
                      utc_now() + timedelta(seconds=30), utc_now(), new_id())
        award = award_for(quote, unit="BTC")
        await adapter.send_award(DESK, award)
        body = (await desk.next("award"))["body"]
        assert (body["execution_id"], body["quantity"], body["quantity_unit"]) == (
            award.execution_id, "10", "BTC")

        # a query on the award topic naming the award's RFQ; no answer in time: UNKNOWN
        asking = asyncio.ensure_future(adapter.query_execution(DESK, award.execution_id, timeout=0.5))
        query = await desk.next("execution.query")
        assert query["body"] == {"execution_id": award.execution_id, "rfq_id": rfq.rfq_id}
        lookup = await asking
        assert lookup.state is ExecutionState.UNKNOWN and "no answer" in lookup.reason

        # answered "not found" (no RFQ named: the desk need not know it): NOT_FOUND
        eid = new_id()
        asking = asyncio.ensure_future(adapter.query_execution(DESK, ExecutionId(eid)))
        assert (await desk.next("execution.query"))["body"] == {"execution_id": eid}
        await desk.send("execution.reject", {"execution_id": eid, "reason": NOT_FOUND_REASON,
                                             "not_found": True})
        assert (await asking).state is ExecutionState.NOT_FOUND

        # answered with a plain reject: REJECTED
        eid = new_id()
        asking = asyncio.ensure_future(adapter.query_execution(DESK, ExecutionId(eid), rfq_id=rfq.rfq_id))
        await desk.next("execution.query")
        await desk.send("execution.reject",
                        {"execution_id": eid, "rfq_id": rfq.rfq_id, "reason": "last look"})
        lookup = await asking
        assert (lookup.state, lookup.reason) == (ExecutionState.REJECTED, "last look")

        # the broker goes away while the engine waits: UNKNOWN at once, not at the timeout
        asking = asyncio.ensure_future(adapter.query_execution(DESK, ExecutionId(new_id()), timeout=60))
        await desk.next("execution.query")
        await world.broker.kill()
        async with asyncio.timeout(READY_TIMEOUT_S):
            lookup = await asking
        assert lookup.state is ExecutionState.UNKNOWN and "dropped" in lookup.reason
        lookup = await adapter.query_execution(DESK, ExecutionId(new_id()))  # and cannot ask now
        assert lookup.state is ExecutionState.UNKNOWN and "cannot ask" in lookup.reason
    finally:
        desk.task.cancel()


async def test_the_engine_finds_a_lost_confirm_and_trades_once(make_world: MakeWorld) -> None:
    world = await make_world(("desk-a", "desk-b"))
    winner = await world.bot("desk-a", spread_bps="10", lose_confirm_rate=1.0)
    runner_up = await world.bot("desk-b", spread_bps="30")
    events = bot_events(winner)
    h = await world.engine(min_quotes=2, confirm_timeout_ms=800)
    await h.adapter.wait_online([DESK, DealerId("desk-b")], timeout=READY_TIMEOUT_S)

    rfq_id = await h.engine.submit(future_rfq(dealers=["desk-a", "desk-b"], window_ms=3000))
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    assert [f.dealer_id for f in await h.store.fills(rfq_id)] == ["desk-a"]
    assert (winner.executed_count(), runner_up.executed_count()) == (1, 0)
    await next_event(events, "lost")  # the confirm was lost; the engine asked, at confirm_by
    await next_event(events, "received", "execution.query")
    awards = await h.audit(rfq_id, ["award.decided"])
    assert [a.payload["dealer_id"] for a in awards] == ["desk-a"]  # never the runner-up
