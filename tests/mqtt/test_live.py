"""The engine and reference dealer bots over a real Mosquitto (ACL and passwords enforced)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiomqtt
import pytest

from dealer_adapters.mqtt.adapter import MqttDealers
from dealer_adapters.mqtt.config import MqttDealerConfig
from rfq_engine.domain import DealerId, Inbound, InboundRejected, Quote, RfqState, new_id
from tests.engine.conftest import future_rfq
from tests.mqtt.conftest import MakeWorld
from tests.mqtt.kit import READY_TIMEOUT_S, World, bot_events, next_event, read_until

pytestmark = pytest.mark.slow

DESKS = ["desk-a", "desk-b", "desk-c"]


async def bids(h: Any, rfq_id: str) -> dict[str, Decimal]:
    events = await h.audit(rfq_id, ["quote.received"])
    return {e.payload["dealer_id"]: Decimal(e.payload["bid"]) for e in events}


async def test_the_best_quote_wins_over_a_real_broker(make_world: MakeWorld) -> None:
    world = await make_world()
    for i, desk in enumerate(DESKS):  # desk-a quotes tightest
        await world.bot(desk, spread_bps=str(10 * (i + 1)))
    h = await world.engine(min_quotes=2)
    await h.adapter.wait_online([DealerId(d) for d in DESKS], timeout=READY_TIMEOUT_S)
    link = h.adapter.link
    assert link is not None and link.nodelay() is True  # TCP_NODELAY on the engine's socket
    assert all(bot.link is not None and bot.link.nodelay() is True for bot in world.bots)

    rfq_id = await h.engine.submit(future_rfq(dealers=DESKS, window_ms=5000))
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED

    quoted = await bids(h, rfq_id)
    assert set(quoted) == set(DESKS)
    fills = await h.store.fills(rfq_id)
    assert [(f.dealer_id, f.price) for f in fills] == [("desk-a", max(quoted.values()))]
    assert quoted["desk-a"] > quoted["desk-b"] > quoted["desk-c"]
    assert await h.rejections() == []


async def test_a_dealer_cannot_read_or_write_another_dealers_topics(make_world: MakeWorld) -> None:
    world = await make_world()
    topics = world.topics()
    h = await world.engine()
    await world.bot("desk-a")
    spy = await world.raw("desk-b")
    # desk-b asks for desk-a's topics too; Mosquitto 2.0 grants the subscription but never
    # delivers a message it may not read (older/newer brokers refuse it: equally fine).
    await spy.subscribe([(topics.topic("desk-a", kind), 1) for kind in ("rfq", "award", "quote", "execution")]
                        + [(topics.topic("desk-b", "rfq"), 1), (topics.topic("desk-b", "award"), 1)])
    await spy.publish(topics.topic("desk-b", "status"),
                      world.envelope("desk-b", "status", {"online": True, "instruments": ["future"]}),
                      qos=1, retain=True)
    await h.adapter.wait_online([DealerId("desk-a"), DealerId("desk-b")], timeout=READY_TIMEOUT_S)
    seen: list[tuple[str, str]] = []

    async def play_spy() -> None:
        async for message in spy.messages:
            envelope = json.loads(bytes(message.payload))
            seen.append((str(message.topic), envelope["type"]))
            if envelope["type"] == "rfq.new":
                rfq_id = envelope["body"]["rfq_id"]
                # a forged quote on desk-a's topic, even signed with desk-a's real secret:
                # the broker's ACL drops it (desk-b may write only its own topics)
                forged = {"rfq_id": rfq_id, "quote_id": new_id(), "bid": "99999", "quantity": "10",
                          "valid_until": "2099-01-01T00:00:00.000000Z"}
                await spy.publish(topics.topic("desk-a", "quote"), world.envelope("desk-a", "quote", forged),
                                  qos=1)
                decline = {"rfq_id": rfq_id, "reason": "spy"}
                await spy.publish(topics.topic("desk-b", "quote"),
                                  world.envelope("desk-b", "quote.decline", decline), qos=1)
            if envelope["type"] == "rfq.closed":
                return

    spying = asyncio.ensure_future(play_spy())
    rfq_id = await h.engine.submit(future_rfq(dealers=["desk-a", "desk-b"], window_ms=5000))
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    # desk-a's rfq.new, quote, award and rfq.closed all went out before desk-b's rfq.closed,
    # which ends the spy: had the broker delivered any of them, the spy would have it by now
    await asyncio.wait_for(spying, READY_TIMEOUT_S)
    assert seen == [(topics.topic("desk-b", "rfq"), "rfq.new"), (topics.topic("desk-b", "rfq"), "rfq.closed")]
    assert (await bids(h, rfq_id)).keys() == {"desk-a"}
    assert Decimal("99999") not in (await bids(h, rfq_id)).values()
    assert await h.rejections() == []  # the forged quote never reached the engine at all
    assert [f.dealer_id for f in await h.store.fills(rfq_id)] == ["desk-a"]


# --------------------------------------------------------------------------- a rogue dealer


@dataclass
class Rogue:
    """desk-c played by a test: it reacts to the engine's messages on its own topics."""

    world: World
    client: aiomqtt.Client

    def quote(self, rfq_id: str, bid: str, **extra: Any) -> dict[str, Any]:
        return {"rfq_id": rfq_id, "quote_id": new_id(), "bid": bid, "quantity": "10",
                "valid_until": "2099-01-01T00:00:00.000000Z", **extra}

    async def send(self, kind: str, payload: bytes) -> None:
        await self.client.publish(self.world.topics().topic("desk-c", kind), payload, qos=1)  # type: ignore[arg-type]

    async def signed(self, kind: str, msg_type: str, body: dict[str, Any], **kw: Any) -> None:
        await self.send(kind, self.world.envelope("desk-c", msg_type, body, **kw))

    async def decline(self, rfq_id: str) -> None:
        await self.signed("quote", "quote.decline", {"rfq_id": rfq_id, "reason": "no"})


Handler = Callable[[Rogue, dict[str, Any]], Awaitable[None]]


async def _nothing(rogue: Rogue, envelope: dict[str, Any]) -> None:
    return None


@dataclass
class Case:
    on_rfq: Handler
    reasons: tuple[str, ...]
    """One of these is in the audited reason."""
    on_award: Handler = _nothing
    confirm_latency_ms: int = 5
    late: bool = False
    """desk-c quotes only once the window is over (when the award goes out)."""


async def _spoofed(r: Rogue, e: dict[str, Any]) -> None:
    rfq_id = e["body"]["rfq_id"]
    # on its own topic, claiming to be desk-a (signed with desk-a's real secret, as if stolen)
    await r.send("quote", r.world.envelope("desk-c", "quote", r.quote(rfq_id, "99999"), dealer_id="desk-a",
                                           secret=r.world.desks["desk-a"].secret))
    await r.decline(rfq_id)


async def _bad_signature(r: Rogue, e: dict[str, Any]) -> None:
    rfq_id = e["body"]["rfq_id"]
    await r.signed("quote", "quote", r.quote(rfq_id, "99999"), secret="not-the-shared-secret-at-all")
    await r.decline(rfq_id)


async def _malformed_json(r: Rogue, e: dict[str, Any]) -> None:
    await r.send("quote", b'{"v": 1, "type": "quote", "body": {"rfq_id": ')
    await r.decline(e["body"]["rfq_id"])


async def _float_price(r: Rogue, e: dict[str, Any]) -> None:
    rfq_id = e["body"]["rfq_id"]
    text = r.world.envelope("desk-c", "quote", r.quote(rfq_id, "99999")).decode()
    await r.send("quote", text.replace('"bid":"99999"', '"bid":99999.5').encode())
    await r.decline(rfq_id)


async def _unknown_rfq(r: Rogue, e: dict[str, Any]) -> None:
    await r.signed("quote", "quote", r.quote("no-such-rfq", "99999"))
    await r.decline(e["body"]["rfq_id"])


async def _duplicate(r: Rogue, e: dict[str, Any]) -> None:
    payload = r.world.envelope("desk-c", "quote", r.quote(e["body"]["rfq_id"], "100"))
    await r.send("quote", payload)  # a valid (poor) quote ...
    await r.send("quote", payload)  # ... and the very same message again (same msg_id)


async def _late_quote_on_award(r: Rogue, e: dict[str, Any]) -> None:
    return None  # silent in the window


async def _bid_best(r: Rogue, e: dict[str, Any]) -> None:
    await r.signed("quote", "quote", r.quote(e["body"]["rfq_id"], "40190"))  # better than the bots


async def _confirm_wrong_price(r: Rogue, e: dict[str, Any]) -> None:
    body = e["body"]
    wrong = str(Decimal(body["price"]) + 5)
    await r.signed("execution", "execution.confirm", {
        "execution_id": body["execution_id"], "rfq_id": body["rfq_id"], "quote_id": body["quote_id"],
        "price": wrong, "quantity": body["quantity"], "dealer_trade_id": "ROGUE-1"})
    # A confirm at another price proves nothing either way (it is refused, and the outcome
    # stays unknown: no fallback on it); the desk then rejects the award outright.
    await r.signed("execution", "execution.reject", {
        "execution_id": body["execution_id"], "rfq_id": body["rfq_id"], "reason": "price moved"})


CASES = {
    "spoofed dealer_id": Case(_spoofed, ("'desk-a' does not match the topic's dealer 'desk-c'",)),
    "bad signature": Case(_bad_signature, ("bad signature",)),
    "malformed JSON": Case(_malformed_json, ("malformed JSON",)),
    "JSON float price": Case(_float_price, ("JSON float",)),
    "unknown rfq_id": Case(_unknown_rfq, ("unknown rfq_id",)),
    "duplicate msg_id": Case(_duplicate, ("duplicate msg_id",)),
    # normally "late: arrived with the RFQ confirming"; on a very slow machine the RFQ
    # may already be over ("rfq is closed"): either way after the deadline
    "quote after the deadline": Case(_late_quote_on_award, ("late: arrived", "rfq is closed"),
                                     confirm_latency_ms=400, late=True),
    "confirm for the wrong price": Case(_bid_best, ("confirm at price",), on_award=_confirm_wrong_price),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_a_rogue_message_is_rejected_audited_and_changes_nothing(make_world: MakeWorld,
                                                                       case: Case) -> None:
    world = await make_world()
    await world.bot("desk-a", spread_bps="10", confirm_latency_ms=case.confirm_latency_ms)
    await world.bot("desk-b", spread_bps="20")
    h = await world.engine(confirm_timeout_ms=800)
    topics = world.topics()
    client = await world.raw("desk-c")
    rogue = Rogue(world, client)
    await client.subscribe([(topics.topic("desk-c", "rfq"), 1), (topics.topic("desk-c", "award"), 1)])
    await client.publish(topics.topic("desk-c", "status"),
                         world.envelope("desk-c", "status", {"online": True, "instruments": ["future"]}),
                         qos=1, retain=True)
    await h.adapter.wait_online([DealerId(d) for d in DESKS], timeout=READY_TIMEOUT_S)
    late_sent = asyncio.Event()

    async def play() -> None:
        async for message in client.messages:
            envelope = json.loads(bytes(message.payload))
            if envelope["type"] == "rfq.new":
                await case.on_rfq(rogue, envelope)
            elif envelope["type"] == "award":
                await case.on_award(rogue, envelope)
            elif envelope["type"] == "rfq.closed":
                return

    if case.late:
        # the window is over (the RFQ is confirming desk-a's award): now desk-c quotes
        async def quote_late() -> None:
            event = await h.wait_for(lambda ev: ev.type == "award.sent")
            assert event.rfq_id is not None
            refused = h.wait_for(lambda ev: ev.actor == "desk-c"
                                 and ev.type in ("quote.rejected", "message.rejected"))
            await rogue.signed("quote", "quote", rogue.quote(event.rfq_id, "99999"))
            await refused
            late_sent.set()

        late = asyncio.ensure_future(quote_late())
    playing = asyncio.ensure_future(play())
    rfq_id = await h.engine.submit(future_rfq(dealers=DESKS, window_ms=1500))
    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    await asyncio.wait_for(playing, READY_TIMEOUT_S)
    if case.late:
        await asyncio.wait_for(late, READY_TIMEOUT_S)
        assert late_sent.is_set()

    # rejected and audited with the reason ...
    events = await h.audit(types=["message.rejected", "quote.rejected"])
    rejected = [str(e.payload["reason"]) for e in events if e.payload.get("dealer_id") == "desk-c"]
    assert any(reason in text for text in rejected for reason in case.reasons), rejected
    bots = [e.payload for e in events if e.payload.get("dealer_id") in ("desk-a", "desk-b")]
    assert bots == []  # the honest desks' messages all went through
    # ... and nothing changed: desk-a's quote won and filled at its own price
    quoted = await bids(h, rfq_id)
    fills = await h.store.fills(rfq_id)
    assert [(f.dealer_id, f.price) for f in fills] == [("desk-a", quoted["desk-a"])]
    assert Decimal("99999") not in quoted.values()
    received = await h.audit(rfq_id, ["quote.received"])
    assert len([e for e in received if e.payload["dealer_id"] == "desk-c"]) <= 1


# --------------------------------------------------------------------------- failures


async def test_a_dealer_that_disconnects_mid_window_is_simply_absent(make_world: MakeWorld) -> None:
    world = await make_world()
    await world.bot("desk-a", spread_bps="10")
    await world.bot("desk-b", spread_bps="20")
    # desk-c is a real `rfq dealer` process: it would quote best, but only after 30 s
    process = await world.dealer_process("desk-c", spread_bps="2", latency_ms=30_000)
    h = await world.engine(min_quotes=2)
    await h.adapter.wait_online([DealerId(d) for d in DESKS], timeout=READY_TIMEOUT_S)
    rfq_id = await h.engine.submit(future_rfq(dealers=DESKS, window_ms=2500))
    await read_until(process, '"dealer.received"')  # desk-c has the RFQ ...
    process.kill()  # ... and dies without a word: its will message says it is offline
    await process.wait()
    await h.adapter.wait_online([DealerId("desk-c")], online=False, timeout=READY_TIMEOUT_S)
    status = h.adapter.status(DealerId("desk-c"))
    assert status is not None and not status.online

    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.FILLED
    quoted = await bids(h, rfq_id)
    assert set(quoted) == {"desk-a", "desk-b"}
    assert [f.dealer_id for f in await h.store.fills(rfq_id)] == ["desk-a"]
    changes = await h.audit(rfq_id, ["rfq.state_changed"])
    closing = [e.payload for e in changes if e.payload["to"] == "awarding"]
    assert "deadline" in closing[0]["reason"] or "window" in closing[0]["reason"], closing
    # the next RFQ does not even wait for it: an offline dealer is not sent rfq.new
    second = await h.engine.submit(future_rfq(dealers=DESKS, window_ms=20_000))
    assert await h.engine.wait(second, timeout=15) is RfqState.FILLED
    sent = (await h.audit(second, ["rfq.sent"]))[0].payload
    assert sent["sent"] == ["desk-a", "desk-b"] and "offline" in sent["failed"]["desk-c"]


async def test_the_broker_restarted_mid_rfq_loses_nothing_acknowledged(make_world: MakeWorld) -> None:
    world = await make_world()
    queues = []
    for i, desk in enumerate(DESKS):
        bot = await world.bot(desk, spread_bps=str(10 * (i + 1)), latency_ms=600)
        queues.append(bot_events(bot))
    h = await world.engine(min_quotes=3)
    await h.adapter.wait_online([DealerId(d) for d in DESKS], timeout=READY_TIMEOUT_S)
    rfq_id = await h.engine.submit(future_rfq(dealers=DESKS, window_ms=10_000))
    for queue in queues:  # every desk has the RFQ and will answer in 0.6 s ...
        await next_event(queue, "received", "rfq.new")
    # (the broker's last snapshot holds every session: it snapshots every 60 s, this one now)
    await world.broker.saved(b"rfq-engine")
    await world.broker.kill()  # ... but the broker dies first, SIGKILL
    await world.broker.start()  # and comes back on the same port with its persisted state

    assert await h.engine.wait(rfq_id, timeout=40) is RfqState.FILLED
    published = [await next_event(queue, "published", "quote") for queue in queues]
    received = {e.payload["msg_id"] for e in await h.audit(rfq_id, ["quote.received"])}
    assert {p.msg_id for p in published} <= received  # every acknowledged quote arrived
    assert [f.dealer_id for f in await h.store.fills(rfq_id)] == ["desk-a"]
    link = h.adapter.link
    assert link is not None and link.connections >= 2  # it reconnected and re-subscribed
    assert all(bot.link is not None and bot.link.connections >= 2 for bot in world.bots)


async def test_an_rfq_whose_deadline_passes_while_the_broker_is_down_ends_cleanly(
        make_world: MakeWorld) -> None:
    world = await make_world()
    queues = [bot_events(await world.bot(desk, latency_ms=400)) for desk in ("desk-a", "desk-b")]
    h = await world.engine()
    await h.adapter.wait_online([DealerId("desk-a"), DealerId("desk-b")], timeout=READY_TIMEOUT_S)
    rfq_id = await h.engine.submit(future_rfq(dealers=["desk-a", "desk-b"], window_ms=1500))
    for queue in queues:
        await next_event(queue, "received", "rfq.new")
    await world.broker.kill()  # and it stays down

    assert await h.engine.wait(rfq_id, timeout=30) is RfqState.NOT_FILLED
    assert await h.audit(rfq_id, ["quote.received"]) == []
    outcome = (await h.audit(rfq_id, ["rfq.outcome_sent"]))[0].payload
    assert set(outcome["failed"]) == {"desk-a", "desk-b"}  # could not tell them: no broker
    for queue in queues:  # the desks gave up on their quotes once the deadline had passed
        assert (await next_event(queue, "dropped", "quote")).detail == "deadline passed"
    # a new RFQ with the broker still down ends at once: nobody can be reached
    second = await h.engine.submit(future_rfq(dealers=["desk-a", "desk-b"], window_ms=20_000))
    assert await h.engine.wait(second, timeout=15) is RfqState.NOT_FILLED


@pytest.mark.parametrize("crash", [False, True], ids=["SIGTERM", "SIGKILL after the save"])
async def test_what_the_broker_acknowledged_survives_a_restart_in_the_engines_session(
        make_world: MakeWorld, crash: bool) -> None:
    """A dealer's messages sent while the engine is away (as recovery relies on for a
    confirm) are kept by the broker for the engine's persistent session, across a restart."""
    world = await make_world()
    env = world.environ()
    dealers = {DealerId("desk-a"): MqttDealerConfig(secret_env=world.desks["desk-a"].secret_env)}
    first = MqttDealers(world.broker_config(), dealers, environ=env)
    await first.start(lambda message: None)  # the session exists, subscribed ...
    await first.close()  # ... and the engine goes away (a clean disconnect keeps the session)

    desk = await world.raw("desk-a")
    sent = []
    for i in range(5):
        body = {"rfq_id": "r-1", "quote_id": f"q-{i}", "bid": "40000", "quantity": "1",
                "valid_until": "2099-01-01T00:00:00.000000Z"}
        payload = world.envelope("desk-a", "quote", body)
        sent.append(json.loads(payload)["msg_id"])
        await desk.publish(world.topics().topic("desk-a", "quote"), payload, qos=1)  # PUBACK received
    if crash:
        # Mosquitto acknowledges first and writes its store at its next snapshot (every 60 s,
        # at shutdown, or on SIGUSR1): a crash before that loses the message, so have one taken
        await world.broker.saved(sent[-1].encode())
        await world.broker.kill()
    else:
        await world.broker.terminate()  # a clean restart: Mosquitto saves on the way out
    await world.broker.start()

    arrived: asyncio.Queue[Inbound] = asyncio.Queue()
    second = MqttDealers(world.broker_config(), dealers, environ=env)
    try:
        await second.start(arrived.put_nowait)
        got: list[Inbound] = []
        while len(got) < 5:
            got.append(await asyncio.wait_for(arrived.get(), READY_TIMEOUT_S))
    finally:
        await second.close()
    assert not any(isinstance(m, InboundRejected) for m in got)
    assert [m.msg_id for m in got if isinstance(m, Quote)] == sent
