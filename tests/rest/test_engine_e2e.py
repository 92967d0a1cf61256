"""The real ``RfqEngine`` with ``RestDealers`` against fake desks over HTTP, end to end.

Each test reads the outcome from the audit store: the RFQ's final state, the fills, and
the audited reasons (declines, rejections, refused answers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rfq_engine.domain import RfqState
from rfq_engine.store import AuditStore, EventFilter
from tests.engine.conftest import FUT_EXPIRY, future_rfq
from tests.rest.conftest import MakeDesk, MakeEngine, desk_config
from tests.rest.fake_desk import FakeDesk


async def payloads(store: AuditStore, rfq_id: str, type_: str) -> list[dict[str, Any]]:
    return [e.payload for e in await store.events(EventFilter(rfq_id=rfq_id, types=[type_]))]


def only_order(desk: FakeDesk) -> str:
    [coid] = desk.order_posts
    return coid


def desk_name() -> str:
    """The desk's name for the test future (template ``{underlying}-{expiry_day}{expiry:%b%y}``)."""
    from datetime import date

    expiry = date.fromisoformat(FUT_EXPIRY)
    return f"BTC-{expiry.day}{expiry.strftime('%b%y').upper()}"


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_quote_and_fill_with_bearer_and_hmac_desks(
    store: str, make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    bearer = await make_desk(auth="bearer", bid="39990")
    signed = await make_desk(auth="hmac", bid="39995")
    adapter = make_adapter({"bearer-desk": desk_config(bearer, tmp_path),
                            "hmac-desk": desk_config(signed, tmp_path)})
    engine, audit = await make_engine(adapter, store=store)

    rfq_id = await engine.submit(future_rfq(dealers=["bearer-desk", "hmac-desk"], window_ms=3000))
    assert await engine.wait(rfq_id, 10) is RfqState.FILLED

    # both desks were asked for the same thing, authenticated, and one session each sufficed
    for desk in (bearer, signed):
        assert desk.auth_failures == []
        [request] = desk.quote_requests
        assert (request["instrument"], request["side"], request["quantity"]) == (desk_name(), "sell", "10")
        assert request["client_rfq_id"] == rfq_id
    # the best bid (the HMAC desk's) was traded: one order, referencing its quote, at its price
    [fill] = await audit.fills(rfq_id)
    assert (fill.dealer_id, fill.quantity, fill.price) == ("hmac-desk", 10, 39995)
    [award] = await audit.awards(rfq_id)
    coid = only_order(signed)
    assert coid == f"rfq-{award.execution_id}"
    assert signed.order_posts[coid] == 1 and bearer.order_posts == {}
    order = signed.orders[coid]
    assert order.body["quote_id"] == award.quote_id and order.body["side"] == "sell"
    assert (order.body["price"], order.body["quantity"], order.status) == ("39995", "10", "filled")
    assert fill.dealer_trade_id == order.trade_id
    # a one-way RFQ on one desk quote: the engine's quote id is the desk's
    assert award.quote_id in signed.quotes


async def test_wrong_credentials_are_an_audited_decline(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    good = await make_desk(auth="hmac")
    locked = await make_desk(auth="hmac")
    environ = {"DESK_KEY": "test-key-1", "DESK_SECRET": "test-secret-1", "WRONG_SECRET": "guess"}
    adapter = make_adapter({
        "good": desk_config(good, tmp_path),
        "locked": desk_config(locked, tmp_path, auth={"scheme": "hmac", "key_env": "DESK_KEY",
                                                      "secret_env": "WRONG_SECRET"}),
    }, environ=environ)
    engine, audit = await make_engine(adapter)
    rfq_id = await engine.submit(future_rfq(dealers=["good", "locked"], window_ms=3000))
    assert await engine.wait(rfq_id, 10) is RfqState.FILLED
    assert locked.auth_failures == ["bad signature"] and good.auth_failures == []
    [declined] = await payloads(audit, rfq_id, "quote.declined")
    assert declined["dealer_id"] == "locked"
    assert declined["reason"] == "desk error HTTP 401: unauthorized: bad signature"


async def test_expired_quote_is_rejected_with_the_desk_reason_then_next_best(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    stale = await make_desk(bid="39999")  # best price, but its quotes are dead at the desk
    stale.expire_quotes = True
    fresh = await make_desk(bid="39990")
    adapter = make_adapter({"stale": desk_config(stale, tmp_path), "fresh": desk_config(fresh, tmp_path)})
    engine, audit = await make_engine(adapter)

    rfq_id = await engine.submit(future_rfq(dealers=["stale", "fresh"], window_ms=3000))
    assert await engine.wait(rfq_id, 10) is RfqState.FILLED

    rejected = await payloads(audit, rfq_id, "execution.rejected")
    assert [(r["dealer_id"], r["reason"], r["timeout"]) for r in rejected] == [
        ("stale", "rejected by the dealer: quote expired", False)]
    assert stale.order_posts[only_order(stale)] == 1
    [fill] = await audit.fills(rfq_id)
    assert (fill.dealer_id, fill.price) == ("fresh", 39990)


async def test_500_timeout_and_malformed_answers_leave_the_rfq_unharmed(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    broken = await make_desk()
    broken.quote_status = 500
    silent = await make_desk()
    silent.quote_hang = True
    garbled = await make_desk()
    garbled.quote_raw = '{"quote_id": "Q-1", "bid": "39990", '
    floaty = await make_desk()
    floaty.quote_raw = ('{"quote_id": "Q-2", "bid": 39990.5, "quantity": "10", '
                        '"expires_at": "2030-01-01T00:00:00Z"}')
    good = await make_desk(bid="39980")
    desks = {"broken": broken, "silent": silent, "garbled": garbled, "floaty": floaty, "good": good}
    adapter = make_adapter({name: desk_config(d, tmp_path) for name, d in desks.items()})
    engine, audit = await make_engine(adapter)

    rfq_id = await engine.submit(future_rfq(dealers=list(desks), window_ms=1500))
    assert await engine.wait(rfq_id, 10) is RfqState.FILLED
    [fill] = await audit.fills(rfq_id)
    assert (fill.dealer_id, fill.price) == ("good", 39980)

    reasons = {p["dealer_id"]: p["reason"] for p in await payloads(audit, rfq_id, "quote.declined")}
    assert set(reasons) == {"broken", "silent", "garbled", "floaty"}
    assert reasons["broken"] == "desk error HTTP 500: internal: pricing engine down"
    assert reasons["silent"].startswith("no answer before the RFQ's deadline")
    assert reasons["garbled"].startswith("malformed answer: quote: not JSON")
    assert reasons["floaty"].startswith("malformed answer: quote.bid: ") and "JSON float" in reasons["floaty"]
    # the unreadable answers are audited as refused messages, with their raw text
    refused = {p["dealer_id"]: p for p in await payloads(audit, rfq_id, "message.rejected")}
    assert set(refused) == {"garbled", "floaty"}
    assert refused["garbled"]["raw"] == garbled.quote_raw
    assert "39990.5" in refused["floaty"]["raw"]
    # the RFQ went on after the window: nothing waited on the silent desk past its deadline
    sent = (await payloads(audit, rfq_id, "rfq.sent"))[0]
    assert sorted(sent["sent"]) == sorted(desks)


async def test_order_timeout_is_reconciled_by_client_order_id_without_a_second_order(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    slow = await make_desk()
    slow.order_hang_s = 1.5  # the desk books the order, then answers after 1.5 s
    config = desk_config(slow, tmp_path, connect_timeout_ms=1000, read_timeout_ms=500)
    adapter = make_adapter({"slow": config})
    engine, audit = await make_engine(adapter, confirm_timeout_ms=6000)

    rfq_id = await engine.submit(future_rfq(dealers=["slow"], window_ms=2000))
    assert await engine.wait(rfq_id, 15) is RfqState.FILLED

    coid = only_order(slow)
    assert slow.order_posts[coid] == 1  # never a second order for the award
    assert slow.order_gets[coid] >= 1  # the outcome was asked for instead
    [confirmed] = await payloads(audit, rfq_id, "execution.confirmed")
    assert confirmed["source"] == "dealer" and confirmed["dealer_trade_id"] == slow.orders[coid].trade_id
    [sent] = await payloads(audit, rfq_id, "award.sent")
    assert sent["error"] is None  # the award itself was taken at once (intent journaled)


async def test_desk_rejection_carries_the_desk_reason(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    desk = await make_desk()
    desk.order_reject_reason = "last look: price moved"
    adapter = make_adapter({"picky": desk_config(desk, tmp_path)})
    engine, audit = await make_engine(adapter)
    rfq_id = await engine.submit(future_rfq(dealers=["picky"], window_ms=2000))
    assert await engine.wait(rfq_id, 10) is RfqState.NOT_FILLED
    [rejected] = await payloads(audit, rfq_id, "execution.rejected")
    assert rejected["reason"] == "rejected by the dealer: last look: price moved"
    assert desk.order_posts[only_order(desk)] == 1


async def test_executed_with_the_reply_lost_is_one_fill(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    """The desk executes and the reply is lost: the adapter asks for the order, the engine
    records that one fill, and the next desk is never awarded."""
    lossy = await make_desk(bid="39999")
    lossy.lose_order_reply = True
    backup = await make_desk(bid="39990")
    adapter = make_adapter({"lossy": desk_config(lossy, tmp_path), "backup": desk_config(backup, tmp_path)})
    engine, audit = await make_engine(adapter, confirm_timeout_ms=3000)
    rfq_id = await engine.submit(future_rfq(dealers=["lossy", "backup"], window_ms=1500))
    assert await engine.wait(rfq_id, 10) is RfqState.FILLED
    fills = await audit.fills(rfq_id)
    assert [f.dealer_id for f in fills] == ["lossy"]
    assert (lossy.executed_count, backup.executed_count) == (1, 0) and backup.order_posts == {}


async def test_executed_reply_lost_and_lookups_down_is_never_traded_twice(
    make_desk: MakeDesk, make_adapter: Any, make_engine: MakeEngine, tmp_path: Path
) -> None:
    """As above, but the desk's lookups answer 503 past confirm_by: the outcome is unknown,
    which must never be taken as a reject."""
    lossy = await make_desk(bid="39999")
    lossy.lose_order_reply = True
    lossy.fail_gets_for(3)
    backup = await make_desk(bid="39990")
    adapter = make_adapter({"lossy": desk_config(lossy, tmp_path, reconcile_grace_ms=10_000),
                            "backup": desk_config(backup, tmp_path)})
    engine, audit = await make_engine(adapter, confirm_timeout_ms=1000)
    rfq_id = await engine.submit(future_rfq(dealers=["lossy", "backup"], window_ms=1500))
    await engine.wait(rfq_id, 20)
    fills = await audit.fills(rfq_id)
    assert backup.order_posts == {}  # never awarded while the lossy order is unknown
    assert lossy.executed_count + backup.executed_count == len(fills) == 1
    assert [f.dealer_id for f in fills] == ["lossy"]
