"""The dealer contract: what every dealer kind does under the real engine, one suite for all.

Modelled on eventsourcing's shared recorder tests: each case is written once, against the
``Kit`` interface (``kit.py``; each kind's kit is ``kit_<kind>.py``, the Block RFQ
kinds' ``kit_deribit_block.py``), and runs on every kind (``simulated``, ``rest``, ``mqtt``,
``ccxt``, ``ccxt-block`` and ``ccxt-block-collar``: Deribit Block RFQ, ``fix``). A kit
builds two dealers on the far side of the kind's real transport and a real ``RfqEngine``;
``desk-a`` quotes best, ``desk-b`` is the fallback.

The invariant every case checks (``assert_books``): per dealer, the executions its side
performed (the fake's own count) equal the fills the store recorded; so an RFQ never ends
with more executions than fills, and never with a fill the dealer did not execute.

The unknown-outcome rule (``rfq_engine/engine/reconcile.py``) is what the lost-reply,
slow-dealer and restart cases exercise: silence by ``confirm_by`` is "unknown", asked about
through the dealer, never a "no"; a fallback comes only once the answer proves the first
award was not executed, and where nothing can prove it the award goes ``unresolved``.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from rfq_engine.domain import RfqState
from rfq_engine.domain.events import EventType
from rfq_engine.engine import EngineEvent
from rfq_engine.engine.resolution import Resolution
from tests.contract.kit import (
    BACKUP,
    DEALERS,
    PRIMARY,
    WAIT_S,
    Act,
    Kit,
    Session,
    engine_config,
)


async def assert_books(s: Session, rfq_id: str, fills: dict[str, int]) -> None:
    """Each dealer's own count of the executions it performed equals the fills the store
    recorded for it (none unrecorded, none made up), and those fills are ``fills``."""
    recorded = await s.store.fills(rfq_id)
    by_dealer = {d: sum(1 for f in recorded if f.dealer_id == d) for d in DEALERS}
    executed = {d: s.kit.executed(d) for d in DEALERS}
    assert executed == by_dealer, f"{s.kit.kind}: executions {executed} but fills {by_dealer}"
    assert sum(executed.values()) <= len(recorded)  # never more executions than fills
    assert by_dealer == {d: fills.get(d, 0) for d in DEALERS}, recorded


def index(history: list[tuple[str, dict[str, object]]], type_: str, dealer: str) -> int:
    """Position of the first ``type_`` event about ``dealer`` in the RFQ's history."""
    found = [i for i, (t, p) in enumerate(history) if t == type_ and p.get("dealer_id") == dealer]
    assert found, f"no {type_} for {dealer}: {[t for t, _ in history]}"
    return found[0]


async def test_quote(kit: Kit) -> None:
    """Both dealers quote the RFQ, desk-a best; the requester cancels before any award
    (``close_policy = "deadline"`` keeps the window open until then)."""
    s = await kit.open()
    quoted: set[str] = set()

    def both_quoted(event: EngineEvent) -> bool:
        if event.type == EventType.QUOTE_RECEIVED:
            quoted.add(str(event.payload["dealer_id"]))
        return quoted >= set(DEALERS)

    done = s.when(both_quoted)
    rfq_id = await s.submit(close_policy="deadline", window_ms=10_000)
    await asyncio.wait_for(done, WAIT_S)
    await s.engine.cancel(rfq_id, actor="alice", reason="just asking")
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.CANCELLED
    spec = kit.spec()
    quotes = {p["dealer_id"]: p for p in reversed(await s.payloads(rfq_id, EventType.QUOTE_RECEIVED))}
    assert set(quotes) == set(DEALERS)
    for quote in quotes.values():
        assert quote["bid"] is not None and Decimal(quote["quantity"]) == spec.quantity
        assert quote["valid_until"] > quote["received_at"]
    assert Decimal(quotes[PRIMARY]["bid"]) > Decimal(quotes[BACKUP]["bid"])  # desk-a is best
    assert await s.payloads(rfq_id, EventType.QUOTE_REJECTED) == []
    assert await s.awarded(rfq_id) == []
    await assert_books(s, rfq_id, {})


async def test_decline(kit: Kit) -> None:
    s = await kit.open({PRIMARY: Act.DECLINE})
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    [declined] = [p for p in await s.payloads(rfq_id, EventType.QUOTE_DECLINED) if p["dealer_id"] == PRIMARY]
    assert declined["reason"]
    assert await s.awarded(rfq_id) == [BACKUP]
    await assert_books(s, rfq_id, {BACKUP: 1})


async def test_award_confirm_one_fill(kit: Kit) -> None:
    s = await kit.open()
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    assert await s.awarded(rfq_id) == [PRIMARY]
    [confirmed] = await s.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)
    assert (confirmed["dealer_id"], confirmed["source"]) == (PRIMARY, "dealer")
    [fill] = await s.store.fills(rfq_id)
    assert fill.quantity == kit.spec().quantity and fill.dealer_trade_id
    assert await s.payloads(rfq_id, EventType.EXECUTION_UNKNOWN) == []
    await assert_books(s, rfq_id, {PRIMARY: 1})


async def test_explicit_reject_falls_back_to_the_next_dealer(kit: Kit) -> None:
    s = await kit.open({PRIMARY: Act.REJECT})
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    assert await s.awarded(rfq_id) == [PRIMARY, BACKUP]
    [rejected] = await s.payloads(rfq_id, EventType.EXECUTION_REJECTED)
    assert rejected["dealer_id"] == PRIMARY and rejected["reason"].startswith("rejected by the dealer: ")
    assert await s.payloads(rfq_id, EventType.EXECUTION_UNKNOWN) == []  # an explicit "no", never unknown
    await assert_books(s, rfq_id, {BACKUP: 1})


async def test_reply_lost_after_the_dealer_executed_is_one_fill_and_no_fallback(kit: Kit) -> None:
    """Issue 12: the dealer executed, its reply was lost, and it could not be asked at
    first. The outcome is unknown, asked about until the dealer answers: one fill, and the
    next dealer is never awarded."""
    s = await kit.open({PRIMARY: Act.LOSE_FILL})
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    await assert_books(s, rfq_id, {PRIMARY: 1})
    assert await s.awarded(rfq_id) == [PRIMARY]
    [unknown] = await s.payloads(rfq_id, EventType.EXECUTION_UNKNOWN)  # the rule was exercised
    assert unknown["dealer_id"] == PRIMARY
    assert await s.payloads(rfq_id, EventType.EXECUTION_REJECTED) == []


async def test_reply_lost_when_the_dealer_did_not_execute(kit: Kit) -> None:
    """The dealer did not execute and the engine did not hear so by ``confirm_by``. Where a
    look-up can prove it, the fallback comes only after that proof; where "not found"
    proves nothing, the award goes ``unresolved``: no fallback, a person decides."""
    bound_ms = 3000 if kit.lost_unfilled_is_provable else 300  # unprovable: unresolved soon
    s = await kit.open({PRIMARY: Act.LOSE_UNFILLED}, config=engine_config(reconcile_timeout_ms=bound_ms))
    rfq_id = await s.submit()
    if kit.lost_unfilled_is_provable:
        assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
        await assert_books(s, rfq_id, {BACKUP: 1})
        assert await s.awarded(rfq_id) == [PRIMARY, BACKUP]
        history = await s.history(rfq_id)
        unknown = index(history, EventType.EXECUTION_UNKNOWN, PRIMARY)
        rejected = index(history, EventType.EXECUTION_REJECTED, PRIMARY)
        fallback = index(history, EventType.AWARD_DECIDED, BACKUP)
        assert unknown < rejected < fallback  # asked first; the answer proved it; then the fallback
        reason = history[rejected][1]["reason"]
        assert isinstance(reason, str) and reason.startswith(("reconciled: ", "rejected by the dealer: "))
        return
    assert await s.engine.wait(rfq_id, WAIT_S, until_unresolved=True) is RfqState.UNRESOLVED
    await assert_books(s, rfq_id, {})
    assert await s.awarded(rfq_id) == [PRIMARY]
    [unresolved] = await s.payloads(rfq_id, EventType.EXECUTION_UNRESOLVED)
    assert unresolved["dealer_id"] == PRIMARY and unresolved["attempts"] >= 1
    award = await s.award_to(rfq_id, PRIMARY)  # a person with the venue's evidence decides
    await s.engine.resolve_execution(rfq_id, Resolution(
        award.execution_id, False, "venue order history: no order with this label", "carol"))
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.NOT_FILLED
    assert await s.awarded(rfq_id) == [PRIMARY]
    await assert_books(s, rfq_id, {})


async def test_dealer_slower_than_send_timeout_is_never_traded_twice(kit: Kit) -> None:
    """The dealer's side takes longer than ``send_timeout_ms`` (and, where the kind lets it,
    than ``confirm_by``): the send is not cancelled, the booking goes on, and the award is
    the one execution."""
    s = await kit.open({PRIMARY: Act.SLOW}, config=engine_config(confirm_timeout_ms=800, send_timeout_ms=100))
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    await assert_books(s, rfq_id, {PRIMARY: 1})
    assert await s.awarded(rfq_id) == [PRIMARY]
    assert await s.payloads(rfq_id, EventType.EXECUTION_REJECTED) == []
    [sent] = await s.payloads(rfq_id, EventType.AWARD_SENT)
    if kit.slow_send:  # the send outlived send_timeout_ms and was left to finish, not cancelled
        assert "carries on" in sent["error"]
    else:
        assert sent["error"] is None


async def test_restart_during_last_look_settles_the_award_once(kit: Kit) -> None:
    """The engine stops while the award is in last look (the dealer executed; nothing can be
    heard from it). A new engine on the same store recovers the RFQ and settles the award
    through the dealer: one execution, one fill, and no new award after the restart."""
    s = await kit.open({PRIMARY: Act.HOLD}, config=engine_config(confirm_timeout_ms=150), durable=True)
    sent = s.when(lambda e: e.type == EventType.AWARD_SENT and e.payload["dealer_id"] == PRIMARY)
    rfq_id = await s.submit()
    await sent
    await s.engine.stop()
    row = await s.store.get_rfq(rfq_id)
    assert row is not None
    assert not RfqState(row.state).is_terminal, (row.state, kit.executed(PRIMARY))
    [parked] = await s.payloads(rfq_id, EventType.RFQ_PARKED)
    assert len(parked["execution_ids"]) == 1
    assert await s.store.fills(rfq_id) == []

    await kit.release()
    s2 = await kit.restart()
    assert rfq_id in s2.recovered
    assert await s2.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    assert await s2.awarded(rfq_id) == [PRIMARY]
    [confirmed] = await s2.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)
    assert confirmed["dealer_id"] == PRIMARY
    await assert_books(s2, rfq_id, {PRIMARY: 1})


async def test_duplicate_confirm_is_one_fill(kit: Kit) -> None:
    """The award reaches the dealer twice (a redelivery while in last look) and once more
    after the fill: the dealer answers the same execution again, never a second trade, and
    the engine records the one fill."""
    s = await kit.open()
    sent = s.when(lambda e: e.type == EventType.AWARD_SENT and e.payload["dealer_id"] == PRIMARY)
    rfq_id = await s.submit()
    await sent
    award = await s.award_to(rfq_id, PRIMARY)
    await s.adapter.send_award(PRIMARY, award)  # the same award again, in last look
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    refused = s.when(lambda e: e.type == EventType.MESSAGE_REJECTED and e.payload.get("dealer_id") == PRIMARY)
    await s.adapter.send_award(PRIMARY, award)  # and after the fill
    answer = await asyncio.wait_for(refused, WAIT_S)  # the dealer answered the same execution again
    assert "duplicate" in str(answer.payload["reason"]) or "closed" in str(answer.payload["reason"])
    assert len(await s.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)) == 1
    await assert_books(s, rfq_id, {PRIMARY: 1})
