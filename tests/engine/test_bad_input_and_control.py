"""Bad dealer input is audited and changes nothing; split awards, cancel, approval, isolation."""

from __future__ import annotations

from decimal import Decimal

from rfq_engine.domain import Award, InboundRejected, RfqClosed, RfqNew, RfqState, utc_now
from rfq_engine.engine import EngineConfig, NotPermitted
from tests.engine.conftest import DEALERS, Harness, future_rfq, mandate_config, wait_state
from tests.engine.test_lifecycle import open_rfq


async def reasons(h: Harness, rfq_id: str | None, type_: str) -> list[str]:
    events = await h.store.events()
    return [e.payload["reason"] for e in events if e.type == type_ and e.rfq_id == rfq_id]


async def test_bad_quotes_are_rejected_and_the_rfq_goes_on(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, dealers=["d1", "d2", "d3"])
    h.dealers.quote(rfq_id, "d1", bid="39950", quantity="11")        # over-size
    h.dealers.quote(rfq_id, "d2", bid="-5")                           # non-positive
    h.dealers.quote(rfq_id, "d3", ask="40000")                        # wrong side
    h.dealers.quote(rfq_id, "d4", bid="41000")                        # not invited
    h.dealers.quote(rfq_id, "d1", bid="39990", valid_ms=-10)          # already expired
    good = h.dealers.quote(rfq_id, "d2", bid="39900", quantity="9.5")  # partial not allowed
    h.dealers.push(good)                                              # duplicate msg_id
    h.dealers.quote(rfq_id, "d3", bid="39800")                        # the only good one
    award = (await h.dealers.next(Award, timeout=4)).message
    assert isinstance(award, Award) and award.dealer_id == "d3"
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    rejected = " | ".join(await reasons(h, rfq_id, "quote.rejected"))
    for needle in ("over-size", "non-positive", "no bid quoted", "not invited", "expired",
                   "does not allow partial"):
        assert needle in rejected, needle
    assert any("duplicate msg_id" in r for r in await reasons(h, rfq_id, "message.rejected"))


async def test_late_quote_and_unknown_rfq_are_audited(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, dealers=["d1"])
    h.dealers.quote(rfq_id, "d1", bid="39900")
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award)
    h.dealers.quote(rfq_id, "d1", bid="39999")  # after the window closed
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    h.dealers.quote("no-such-rfq", "d1", bid="1")
    h.dealers.push(InboundRejected("d1", "bad signature", utc_now(), "m-1", None, "{}"))  # type: ignore[arg-type]
    await h.store.flush()
    assert any(r.startswith("late") for r in await reasons(h, rfq_id, "quote.rejected"))
    unattributed = await reasons(h, None, "message.rejected")
    assert "unknown rfq_id" in unattributed and "bad signature" in unattributed


async def test_a_redelivery_after_the_rfq_ended_is_rejected_as_closed(make_harness) -> None:
    """Duplicates are caught per live RFQ; once it has ended, a copy of any of its messages
    (a confirm redelivered by QoS 1, say) is rejected under that RFQ as closed and changes
    nothing, however long ago it ended."""
    h = await make_harness()
    rfq_id = await open_rfq(h, dealers=["d1"])
    quote = h.dealers.quote(rfq_id, "d1", bid="39900")
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award)
    h.dealers.confirm(award, msg_id="confirm-1")
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    h.dealers.push(quote)
    h.dealers.confirm(award, msg_id="confirm-1")
    await h.store.flush()
    closed = await reasons(h, rfq_id, "message.rejected")
    assert closed.count("rfq is closed (filled)") == 2, closed
    fills = [e for e in await h.store.events() if e.type == "execution.confirmed"]
    assert len(fills) == 1


async def test_bad_confirms_change_nothing(make_harness) -> None:
    h = await make_harness(config=EngineConfig(confirm_timeout_ms=3000))
    rfq_id = await open_rfq(h, dealers=["d1", "d2"])
    h.dealers.quote(rfq_id, "d1", bid="39950")
    h.dealers.quote(rfq_id, "d2", bid="39900")
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award) and award.dealer_id == "d1"
    h.dealers.confirm(award, price=Decimal("39951"))               # wrong price
    h.dealers.confirm(award, quantity=Decimal("10.5"))             # more than awarded
    h.dealers.confirm(award, dealer="d2")                          # spoofed dealer
    await h.store.flush()
    assert h.engine.live(rfq_id).state is RfqState.CONFIRMING      # type: ignore[union-attr]
    assert await h.store.fills(rfq_id) == []
    h.dealers.confirm(award, msg_id="c-1")
    h.dealers.confirm(award, msg_id="c-2")                         # same execution again
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    assert len(await h.store.fills(rfq_id)) == 1
    text = " | ".join(await reasons(h, rfq_id, "message.rejected"))
    assert "award was at 39950" in text and "awarded 10" in text and "award to d1" in text
    assert "duplicate confirm" in text


async def test_split_award_fills_from_best_quotes_in_order(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, allow_partial=True, quantity="10")
    h.dealers.quote(rfq_id, "d1", bid="39950", quantity="4")
    h.dealers.quote(rfq_id, "d2", bid="39940", quantity="5")
    h.dealers.quote(rfq_id, "d3", bid="39930", quantity="6")
    h.dealers.quote(rfq_id, "d4", bid="39800", quantity="10")
    awards = [(await h.dealers.next(Award)).message for _ in range(3)]
    got = sorted((a.dealer_id, a.quantity) for a in awards)  # type: ignore[union-attr]
    assert got == [("d1", Decimal(4)), ("d2", Decimal(5)), ("d3", Decimal(1))]
    for a in awards:
        h.dealers.confirm(a)  # type: ignore[arg-type]
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    fills = await h.store.fills(rfq_id)
    assert sum(f.quantity for f in fills) == Decimal(10)


async def test_split_award_partial_reject_falls_back_and_partial_fill(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, allow_partial=True, quantity="10", dealers=["d1", "d2"])
    h.dealers.quote(rfq_id, "d1", bid="39950", quantity="6")
    h.dealers.quote(rfq_id, "d2", bid="39940", quantity="3")
    awards = {a.dealer_id: a for a in [(await h.dealers.next(Award)).message for _ in range(2)]}  # type: ignore[union-attr]
    h.dealers.confirm(awards["d1"], quantity=Decimal(5))  # confirms less than awarded
    h.dealers.reject(awards["d2"])
    assert await h.engine.wait(rfq_id, 5) is RfqState.PARTIALLY_FILLED
    row = await h.store.get_rfq(rfq_id)
    assert row is not None and row.filled_quantity == Decimal(5)


async def test_cancel_while_open_and_pending_approval(make_harness) -> None:
    h = await make_harness(mandate=mandate_config(approval_threshold="1000000"))
    rfq_id = await h.engine.submit(future_rfq())  # 10 BTC ~ 400k: no approval needed
    await h.dealers.next(RfqNew)
    await h.engine.cancel(rfq_id, actor="alice", reason="changed my mind")
    assert await h.engine.wait(rfq_id, 5) is RfqState.CANCELLED
    assert {m.message.outcome for m in h.dealers.sent(RfqClosed)} == {"cancelled"}  # type: ignore[union-attr]
    big = await h.engine.submit(future_rfq(quantity="100"))
    await wait_state(h, big, "pending_approval")
    await h.engine.cancel(big, actor="alice")
    assert await h.engine.wait(big, 5) is RfqState.CANCELLED


async def test_cancel_while_confirming_honours_the_last_look(make_harness) -> None:
    h = await make_harness(config=EngineConfig(confirm_timeout_ms=3000))
    rfq_id = await open_rfq(h, dealers=["d1"])
    h.dealers.quote(rfq_id, "d1", bid="39950")
    award = (await h.dealers.next(Award)).message
    await h.engine.cancel(rfq_id, actor="alice")
    h.dealers.confirm(award)  # type: ignore[arg-type]
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED


async def test_approval_by_another_user(make_harness) -> None:
    h = await make_harness(mandate=mandate_config(approval_threshold="1000000"))
    rfq_id = await h.engine.submit(future_rfq(quantity="100"))
    await wait_state(h, rfq_id, "pending_approval")
    assert h.dealers.log == []
    try:
        await h.engine.approve(rfq_id, approver="alice")
        raise AssertionError("self-approval must be refused")
    except NotPermitted:
        pass
    await h.engine.approve(rfq_id, approver="bob")
    await h.dealers.next(RfqNew)
    for dealer in DEALERS:
        h.dealers.quote(rfq_id, dealer, bid="39900", quantity="100")
    h.dealers.confirm((await h.dealers.next(Award)).message)  # type: ignore[arg-type]
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    granted = [e for e in await h.store.events() if e.type == "approval.granted"]
    assert granted[0].actor == "bob"


async def test_hung_dealer_does_not_delay_other_rfqs_or_the_deadline(make_harness) -> None:
    h = await make_harness(config=EngineConfig(send_timeout_ms=200, confirm_timeout_ms=1000))
    h.dealers.hang.add("d4")
    a = await h.engine.submit(future_rfq(window_ms=400))
    b = await h.engine.submit(future_rfq(window_ms=400, dealers=["d1", "d2"]))
    for _ in range(5):
        await h.dealers.next(RfqNew)
    for rfq_id in (a, b):
        h.dealers.quote(rfq_id, "d1", bid="39900")
    for _ in range(2):
        h.dealers.confirm((await h.dealers.next(Award, timeout=3)).message)  # type: ignore[arg-type]
    assert await h.engine.wait(a, 5) is RfqState.FILLED
    assert await h.engine.wait(b, 5) is RfqState.FILLED
    sent = (await h.payloads(a, "rfq.sent"))[0]
    assert "d4" in sent["failed"]


async def test_offline_dealer_is_absent(make_harness) -> None:
    h = await make_harness()
    h.dealers.offline.add("d2")
    rfq_id = await h.engine.submit(future_rfq(dealers=["d1", "d2"]))
    await h.dealers.next(RfqNew)
    h.dealers.quote(rfq_id, "d1", bid="39900")
    h.dealers.confirm((await h.dealers.next(Award)).message)  # type: ignore[arg-type]
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    assert "d2" in (await h.payloads(rfq_id, "rfq.sent"))[0]["failed"]


async def test_off_market_quote_rejected_by_tolerance(make_harness) -> None:
    h = await make_harness(mandate=mandate_config(price_tolerance_bps="200"))
    rfq_id = await open_rfq(h, dealers=["d1", "d2"])
    fair = h.engine.live(rfq_id).reference.value  # type: ignore[union-attr]
    h.dealers.quote(rfq_id, "d1", bid=str(fair * 2))   # fat finger
    h.dealers.quote(rfq_id, "d2", bid=str(fair - 50))
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award) and award.dealer_id == "d2"
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    ranked = (await h.payloads(rfq_id, "quotes.ranked"))[0]
    assert ranked["rejected"][0]["dealer_id"] == "d1"
    assert "off-market" in ranked["rejected"][0]["reason"]
