"""An engine against QuickFIX desks: what only FIX has (the contract suite runs the rest).

Every case runs a real ``RfqEngine`` over ``FixDealers`` against two QuickFIX acceptors
(``quickfix_desk.py``), which validate what we send against QuickFIX's FIX 4.4 data
dictionary and answer a malformed message with a session ``Reject(3)``: every case checks
the desks sent none. Each desk counts what it executed; the store's fills must match.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.fix import FixDealers
from dealer_adapters.protocol import DealerAdapter, ExecutionState
from rfq_engine.domain import RfqState
from rfq_engine.domain.events import EventType
from tests.contract.kit import BACKUP, DEALERS, PRIMARY, WAIT_S, Act, Session
from tests.contract.kit_fix import FixKit
from tests.fix.conftest import fix_config
from tests.fix.quickfix_desk import QuickFixDesk, require_quickfix


class Kit(FixKit):
    """``FixKit`` with per-test overrides of our side's ``[dealers.fix]`` table."""

    def __init__(self, tmp: Path, **overrides: Any) -> None:
        super().__init__(tmp)
        self.overrides = overrides

    def _adapter(self) -> DealerAdapter:
        state = self.tmp / "fix-state"
        configs = {d: fix_config(desk, state, **self.overrides) for d, desk in self.desks.items()}
        adapter: DealerAdapter = FixDealers(configs)
        return adapter

    def desk(self, dealer: str = PRIMARY) -> QuickFixDesk:
        desk: QuickFixDesk = self.desks[dealer]
        return desk


@pytest.fixture
async def make_kit(tmp_path: Path) -> Any:
    require_quickfix()
    kits: list[Kit] = []

    def make(**overrides: Any) -> Kit:
        kit = Kit(tmp_path, **overrides)
        kits.append(kit)
        return kit

    yield make
    for kit in kits:
        try:
            for dealer in DEALERS:  # QuickFIX refused nothing we sent as malformed
                if dealer in kit.desks:
                    assert kit.desks[dealer].outbound("3") == [], kit.desks[dealer].outbound("3")
                    assert kit.desks[dealer].outbound("j") == []
        finally:
            await kit.close()


async def fills(s: Session, rfq_id: str) -> dict[str, int]:
    recorded = await s.store.fills(rfq_id)
    return {d: sum(1 for f in recorded if f.dealer_id == d) for d in DEALERS}


async def test_award_is_a_quote_response_keyed_by_the_execution_id(make_kit: Any) -> None:
    kit: Kit = make_kit()
    s = await kit.open()
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    award = await s.award_to(rfq_id, PRIMARY)
    [request] = kit.desk().inbound("R")
    assert "|55=BTC-26FEB27|" in request  # the symbol is the config's
    assert f"|131={rfq_id}|" in request and "|146=1|" in request and "|54=2|" in request
    [response] = kit.desk().inbound("AJ")
    assert f"|693=rfq-{award.execution_id}|" in response and "|694=1|" in response
    assert f"|11=rfq-{award.execution_id}|" in response and "|44=39999|" in response
    [confirmed] = await s.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)
    assert confirmed["dealer_trade_id"] == "O1" and confirmed["price"] == "39999"
    assert await fills(s, rfq_id) == {PRIMARY: 1, BACKUP: 0}
    assert kit.executed(PRIMARY) == 1 and kit.executed(BACKUP) == 0


async def test_new_order_single_award_and_losers_told_done_away(make_kit: Any) -> None:
    kit: Kit = make_kit(award_style="new_order_single", tell_losers="done_away")
    s = await kit.open()
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    award = await s.award_to(rfq_id, PRIMARY)
    [order] = kit.desk().inbound("D")
    assert f"|11=rfq-{award.execution_id}|" in order and "|40=D|" in order and "|59=4|" in order
    assert "|117=Q1|" in order
    loser = kit.desk(BACKUP)
    await loser.wait_for(lambda: loser.count("LOSER 5") == 1, "the loser's QuoteResponse 5")
    assert kit.desk().count("LOSER") == 0
    assert await fills(s, rfq_id) == {PRIMARY: 1, BACKUP: 0}


async def test_quote_request_reject_is_a_decline_with_its_reason_code(make_kit: Any) -> None:
    kit: Kit = make_kit()
    s = await kit.open({PRIMARY: Act.DECLINE})
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    declines = [p for p in await s.payloads(rfq_id, EventType.QUOTE_DECLINED) if p["dealer_id"] == PRIMARY]
    expected = "QuoteRequestRejectReason 10 (pass): no appetite for this size"
    assert [d["reason"] for d in declines] == [expected]
    assert await fills(s, rfq_id) == {PRIMARY: 0, BACKUP: 1}


async def test_last_look_reject_falls_back_with_the_desks_text(make_kit: Any) -> None:
    kit: Kit = make_kit()
    s = await kit.open({PRIMARY: Act.REJECT})
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    [rejected] = await s.payloads(rfq_id, EventType.EXECUTION_REJECTED)
    assert "last look: price moved" in rejected["reason"]
    assert await s.awarded(rfq_id) == [PRIMARY, BACKUP]
    assert await fills(s, rfq_id) == {PRIMARY: 0, BACKUP: 1}
    assert kit.executed(PRIMARY) == 0 and kit.executed(BACKUP) == 1


async def test_connection_dropped_mid_award_then_the_report_is_resent_after_the_gap(make_kit: Any) -> None:
    """The desk executes, drops the connection before reporting it, and reports while we are
    away (QuickFIX stores it). We reconnect, see the desk's numbers ahead of ours, send a
    ResendRequest, and QuickFIX resends the report with PossDupFlag: one fill, no fallback."""
    kit: Kit = make_kit()
    s = await kit.open({PRIMARY: Act.HOLD})
    desk = kit.desk()
    kit.outage(PRIMARY, False)  # only the connection drops here: status requests are answered
    rfq_id = await s.submit()
    await desk.wait_for(lambda: desk.executed_count == 1, "the desk to execute")
    await desk.command("drop")
    await desk.command("release")
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    await desk.wait_for(lambda: desk.count("LOGON") == 2, "the session to resume")
    assert desk.inbound("2"), "no ResendRequest after the gap"
    resent = [m for m in desk.outbound("8") if "|43=Y|" in m]
    assert resent and all("|122=" in m for m in resent)
    assert await fills(s, rfq_id) == {PRIMARY: 1, BACKUP: 0}
    assert await s.awarded(rfq_id) == [PRIMARY]
    assert len(await s.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)) == 1


async def test_duplicate_execution_reports_are_one_fill(make_kit: Any) -> None:
    """The desk reports the fill twice as new messages, then (our side having lost its
    last stored inbound number, as a crash before the store would) QuickFIX resends the
    report with PossDupFlag: the journal's one outcome stands, one fill, one confirm."""
    kit: Kit = make_kit()
    s = await kit.open(durable=True)
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    desk = kit.desk()
    await desk.command("dup")
    await desk.wait_for(lambda: len(desk.outbound("8")) == 2, "the duplicate report")
    award = await s.award_to(rfq_id, PRIMARY)
    # answered on the same session after the duplicate, so the duplicate was handled by now
    lookup = await s.adapter.query_execution(PRIMARY, award.execution_id)
    assert lookup.state is ExecutionState.CONFIRMED
    assert len(await s.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)) == 1

    await s.engine.stop()
    numbers = kit.tmp / "fix-state" / f"{PRIMARY}.session.json"
    stored = json.loads(numbers.read_text())
    numbers.write_text(json.dumps({**stored, "next_in": 2}))  # as if the last stores were lost
    s2 = await kit.restart()
    await desk.wait_for(lambda: any("|43=Y|" in m for m in desk.outbound("8")), "the resent report")
    rfq2 = await s2.submit()  # its messages come after the resent ones: handled in order
    assert await s2.engine.wait(rfq2, WAIT_S) is RfqState.FILLED
    assert desk.inbound("2"), "no ResendRequest"
    assert len(await s2.payloads(rfq_id, EventType.EXECUTION_CONFIRMED)) == 1
    assert await fills(s2, rfq_id) == {PRIMARY: 1, BACKUP: 0}
    assert kit.executed(PRIMARY) == 2  # the first RFQ's fill and the second's
    journal = (kit.tmp / "fix-state" / f"{PRIMARY}.orders.jsonl").read_text().splitlines()
    assert sum('"type":"outcome"' in line for line in journal) == 2


async def test_restarted_adapter_resumes_the_session_numbers(make_kit: Any) -> None:
    kit: Kit = make_kit()
    s = await kit.open()
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    s2 = await kit.restart()
    desk = kit.desk()
    await desk.wait_for(lambda: desk.count("LOGON") == 2, "the second logon")
    logons = desk.inbound("A")
    assert "|34=1|" in logons[0] and "|34=1|" not in logons[1] and "|141=Y|" not in logons[1]
    assert desk.outbound("4") == [] and desk.inbound("2") == []  # nothing lost, nothing to resend
    rfq2 = await s2.submit()
    assert await s2.engine.wait(rfq2, WAIT_S) is RfqState.FILLED
    assert kit.executed(PRIMARY) == 2


async def test_quote_cancelled_by_the_desk_is_never_awarded(make_kit: Any) -> None:
    kit: Kit = make_kit()
    s = await kit.open()
    desk = kit.desk()
    quoted = s.when(lambda e: e.type == EventType.QUOTE_RECEIVED and e.payload["dealer_id"] == PRIMARY)
    backup_quoted = s.when(lambda e: e.type == EventType.QUOTE_RECEIVED and e.payload["dealer_id"] == BACKUP)
    rfq_id = await s.submit(window_ms=1500, close_policy="deadline")
    await asyncio.wait_for(quoted, WAIT_S)
    await asyncio.wait_for(backup_quoted, WAIT_S)
    await desk.command("cancel")
    await desk.wait_for(lambda: bool(desk.outbound("Z")), "the QuoteCancel")
    adapter: Any = s.adapter
    await adapter.wait_online([PRIMARY], WAIT_S)
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    assert desk.inbound("AJ") == [] and kit.executed(PRIMARY) == 0
    assert await s.awarded(rfq_id) == [PRIMARY, BACKUP]  # refused before sending, then the fallback
    [sent, _] = await s.payloads(rfq_id, EventType.AWARD_SENT)
    assert "cancelled" in sent["error"] and "nothing sent" in sent["error"]
    assert await fills(s, rfq_id) == {PRIMARY: 0, BACKUP: 1}


async def test_reset_on_logon_starts_both_numbers_again(make_kit: Any) -> None:
    kit: Kit = make_kit(reset_on_logon=True)
    s = await kit.open()
    rfq_id = await s.submit()
    assert await s.engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
    s2 = await kit.restart()
    desk = kit.desk()
    await desk.wait_for(lambda: desk.count("LOGON") == 2, "the second logon")
    assert all("|141=Y|" in m and "|34=1|" in m for m in desk.inbound("A"))
    assert "|141=Y|" in desk.outbound("A")[-1] and "|34=1|" in desk.outbound("A")[-1]
    rfq2 = await s2.submit()
    assert await s2.engine.wait(rfq2, WAIT_S) is RfqState.FILLED
    assert kit.executed(PRIMARY) == 2 and desk.inbound("2") == []
