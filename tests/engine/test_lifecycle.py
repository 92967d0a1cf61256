"""The RFQ lifecycle end to end against a scripted transport: ranking, award, last look, fill."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from rfq_engine.domain import Award, QuoteSide, RfqClosed, RfqNew, RfqState
from rfq_engine.engine import EngineConfig, InvalidRequest
from tests.engine.conftest import DEALERS, Harness, future_rfq, mandate_config


async def open_rfq(h: Harness, **overrides: object) -> str:
    rfq_id = await h.engine.submit(future_rfq(**overrides))
    for _ in h.engine.live(rfq_id).spec.dealers:  # type: ignore[union-attr]
        await h.dealers.next(RfqNew)
    return rfq_id


async def test_sell_awards_highest_bid_and_fills(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h)
    for dealer, bid in zip(DEALERS, ["39900", "39950", "39800", "39940"], strict=True):
        h.dealers.quote(rfq_id, dealer, bid=bid)
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award)
    assert (award.dealer_id, award.price, award.side) == ("d2", Decimal("39950"), QuoteSide.BID)
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    fills = await h.store.fills(rfq_id)
    assert [(f.dealer_id, f.price, f.quantity) for f in fills] == [("d2", Decimal("39950"), Decimal(10))]
    closed = {s.dealer: s.message for s in h.dealers.sent(RfqClosed)}
    assert set(closed) == set(DEALERS)
    assert [d for d, m in closed.items() if m.you_won] == ["d2"]  # type: ignore[union-attr]
    states = [p["to"] for p in await h.payloads(rfq_id, "rfq.state_changed")]
    assert states == ["open", "awarding", "confirming", "filled"]
    decided = await h.payloads(rfq_id, "award.decided")
    assert decided[0]["cover_price"] == "39940"


async def test_buy_awards_lowest_ask_and_tie_goes_to_earlier_quote(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, direction="buy",
                            legs=[{"instrument": {"kind": "spot", "underlying": "BTC",
                                                  "quote_ccy": "USD"}, "side": "buy"}])
    h.dealers.quote(rfq_id, "d3", ask="40010")
    h.dealers.quote(rfq_id, "d1", ask="40010")
    h.dealers.quote(rfq_id, "d2", ask="40050")
    h.dealers.quote(rfq_id, "d4", ask="40100")
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award)
    assert (award.dealer_id, award.side, award.price) == ("d3", QuoteSide.ASK, Decimal("40010"))
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED


async def test_two_way_hides_direction_and_awards_on_private_side(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, direction="two_way", private_side="buy",
                            legs=[{"instrument": {"kind": "perpetual", "underlying": "BTC",
                                                  "quote_ccy": "USDT"}, "side": "buy"}])
    sent = [s.message for s in h.dealers.sent(RfqNew)]
    assert all(m.direction.value == "two_way" for m in sent)  # type: ignore[union-attr]
    h.dealers.quote(rfq_id, "d1", bid="39990", ask="40020")
    h.dealers.quote(rfq_id, "d2", bid="39999", ask="40030")  # best bid, but we buy
    h.dealers.quote(rfq_id, "d3", bid="39900", ask="40015")
    h.dealers.decline(rfq_id, "d4")
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award)
    assert (award.dealer_id, award.side, award.price) == ("d3", QuoteSide.ASK, Decimal("40015"))
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED


async def test_window_closes_at_deadline_with_silent_dealers(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, window_ms=300)
    h.dealers.quote(rfq_id, "d1", bid="39900")  # the others stay silent
    award = (await h.dealers.next(Award, timeout=2)).message
    assert isinstance(award, Award) and award.dealer_id == "d1"
    h.dealers.confirm(award)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    changed = await h.payloads(rfq_id, "rfq.state_changed")
    assert changed[1] == {"from": "open", "to": "awarding", "reason": "response window closed"}


async def test_all_declines_end_not_filled_with_reason(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h)
    for dealer in DEALERS:
        h.dealers.decline(rfq_id, dealer)
    assert await h.engine.wait(rfq_id, 5) is RfqState.NOT_FILLED
    row = await h.store.get_rfq(rfq_id)
    assert row is not None and "0" in row.reason and "quote" in row.reason
    assert not h.dealers.sent(Award)
    assert all(not s.message.you_won for s in h.dealers.sent(RfqClosed))  # type: ignore[union-attr]


async def test_min_quotes_not_met_is_not_filled(make_harness) -> None:
    h = await make_harness(mandate=mandate_config(min_quotes=3))
    rfq_id = await open_rfq(h)
    h.dealers.quote(rfq_id, "d1", bid="39900")
    h.dealers.quote(rfq_id, "d2", bid="39950")
    h.dealers.decline(rfq_id, "d3")
    h.dealers.decline(rfq_id, "d4")
    assert await h.engine.wait(rfq_id, 5) is RfqState.NOT_FILLED
    ranked = (await h.payloads(rfq_id, "quotes.ranked"))[0]
    assert ranked["min_quotes"]["passed"] is False
    assert len(ranked["ranking"]) == 2
    assert not h.dealers.sent(Award)


async def test_last_look_reject_falls_back_to_next_best(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h)
    for dealer, bid in zip(DEALERS, ["39900", "39950", "39800", "39940"], strict=True):
        h.dealers.quote(rfq_id, dealer, bid=bid)
    first = (await h.dealers.next(Award)).message
    assert isinstance(first, Award) and first.dealer_id == "d2"
    h.dealers.reject(first)
    second = (await h.dealers.next(Award)).message
    assert isinstance(second, Award) and (second.dealer_id, second.price) == ("d4", Decimal("39940"))
    h.dealers.confirm(second)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    states = [p["to"] for p in await h.payloads(rfq_id, "rfq.state_changed")]
    assert states == ["open", "awarding", "confirming", "awarding", "confirming", "filled"]
    assert [c.message.you_won for c in h.dealers.sent(RfqClosed, "d2")] == [False]  # type: ignore[union-attr]


async def test_confirm_timeout_counts_as_reject(make_harness) -> None:
    h = await make_harness(config=EngineConfig(confirm_timeout_ms=200))
    rfq_id = await open_rfq(h)
    h.dealers.quote(rfq_id, "d1", bid="39950")
    h.dealers.quote(rfq_id, "d2", bid="39900")
    for dealer in ("d3", "d4"):
        h.dealers.decline(rfq_id, dealer)
    first = (await h.dealers.next(Award)).message
    assert isinstance(first, Award) and first.dealer_id == "d1"
    second = (await h.dealers.next(Award, timeout=3)).message  # d1 stays silent
    assert isinstance(second, Award) and second.dealer_id == "d2"
    h.dealers.confirm(first)  # too late: refused, no fill from d1
    h.dealers.confirm(second)
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    fills = await h.store.fills(rfq_id)
    assert [f.dealer_id for f in fills] == ["d2"]
    rejected = await h.payloads(rfq_id, "execution.rejected")
    assert rejected[0]["timeout"] is True


async def test_unknown_dealer_or_mandate_is_a_clear_error(make_harness) -> None:
    h = await make_harness()
    with pytest.raises(InvalidRequest) as err:
        await h.engine.submit(future_rfq(dealers=["d1", "nobody"]))
    assert err.value.field == "dealers" and "nobody" in err.value.reason
    with pytest.raises(InvalidRequest) as err2:
        await h.engine.submit(future_rfq(mandate="other"))
    assert err2.value.field == "mandate"


async def test_idempotent_submit_returns_same_rfq(make_harness) -> None:
    h = await make_harness()
    spec = future_rfq(client_rfq_id="hedge-2026-12")
    ids = await asyncio.gather(*(h.engine.submit(spec) for _ in range(5)))
    assert len(set(ids)) == 1
    submitted = [e for e in await h.store.events() if e.type == "rfq.submitted"]
    assert len(submitted) == 1
    await h.engine.cancel(ids[0], actor="alice")
    assert await h.engine.wait(ids[0], 5) is RfqState.CANCELLED
    assert await h.engine.submit(spec) == ids[0]  # still the same after it ended


async def test_pre_trade_rejection_never_reaches_dealers(make_harness) -> None:
    h = await make_harness(mandate=mandate_config(max_notional_per_rfq="100000"))
    rfq_id = await h.engine.submit(future_rfq())
    assert await h.engine.wait(rfq_id, 5) is RfqState.REJECTED
    assert h.dealers.log == []
    checked = (await h.payloads(rfq_id, "mandate.checked"))[0]
    assert checked["passed"] is False
    assert any(not v["passed"] and "100,000" in v["reason"] for v in checked["verdicts"])


async def test_timeout_asks_the_dealer_before_falling_back(make_harness) -> None:
    """An order that filled at the venue but whose confirm never arrived must not be
    counted as a reject: the next quote would then trade the same size a second time."""
    from dealer_adapters.protocol import ExecutionLookup, ExecutionState
    from rfq_engine.domain import DealerId, ExecutionConfirm, utc_now

    h = await make_harness(config=EngineConfig(confirm_timeout_ms=200))
    rfq_id = await open_rfq(h, dealers=["d1", "d2"])
    h.dealers.quote(rfq_id, "d1", bid="39950")
    h.dealers.quote(rfq_id, "d2", bid="39900")
    award = (await h.dealers.next(Award)).message
    assert isinstance(award, Award) and award.dealer_id == "d1"
    h.dealers.lookups[award.execution_id] = ExecutionLookup(ExecutionState.CONFIRMED, ExecutionConfirm(
        award.execution_id, award.rfq_id, award.quote_id, DealerId("d1"), award.price,
        award.quantity, "VENUE-1", utc_now(), "lookup"))
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    assert len(h.dealers.sent(Award)) == 1  # no fallback award to d2
    confirmed = await h.payloads(rfq_id, "execution.confirmed")
    assert [c["source"] for c in confirmed] == ["reconciled"]
    assert [(f.dealer_id, f.dealer_trade_id) for f in await h.store.fills(rfq_id)] == [("d1", "VENUE-1")]


async def test_reference_at_award_is_recorded_for_tca(make_harness) -> None:
    h = await make_harness()
    rfq_id = await open_rfq(h, dealers=["d1"])
    h.dealers.quote(rfq_id, "d1", bid="39950")
    h.dealers.confirm((await h.dealers.next(Award)).message)  # type: ignore[arg-type]
    assert await h.engine.wait(rfq_id, 5) is RfqState.FILLED
    await h.store.flush()
    from rfq_engine.readmodels.decision import build_decision_record
    from rfq_engine.store.base import EventFilter

    record = build_decision_record(await h.store.events(EventFilter(rfq_id=rfq_id)))
    assert record["awards"][0]["reference"]["value"] == record["reference"]["value"]
    assert record["tca"]["vs_award_bps"] == record["tca"]["vs_request_bps"] is not None
