"""Crash recovery, end to end, with real processes and a real kill -9.

The requirement: the engine's state can be rebuilt from the store alone. After a crash at
any point of the lifecycle, every RFQ left non-terminal is resumed or brought to a
terminal state with an audit event saying why; an award sent but not confirmed is
reconciled with the dealer, never re-awarded blindly; no award ever executes twice; the
audit chain still verifies.

Each test runs ``rfq request`` as a subprocess that dies by SIGKILL (a named failpoint,
``RFQ_FAILPOINTS``, or ``os.kill`` from the test), reads the store right after the kill,
runs ``rfq recover``, and checks the store against itself, against the snapshot taken at
the kill, and against the simulated desks' ledgers (the dealers' side of every trade),
then runs ``rfq audit verify``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from dealer_adapters.simulated import ExecutionRecord
from rfq_engine.domain.events import EventType
from rfq_engine.failpoints import POINTS

from .harness import (
    NON_TERMINAL,
    Case,
    DeskSettings,
    StoreView,
    default_desks,
    killed,
    make_case,
    output,
    read_ledgers,
    run_rfq,
    start_rfq,
    wait_for_event,
)

pytestmark = pytest.mark.slow

# What the store must show when the process dies at each failpoint (failpoints.py).
AT_KILL: dict[str, frozenset[str]] = {
    "rfq.submitted": frozenset({"created"}),
    # the OPEN transition is durable before anything leaves (write-ahead for "who was asked")
    "rfq.sent": frozenset({"open"}),
    "award.durable": frozenset({"awarding"}),
    # the AWARDING -> CONFIRMING transition is queued, not awaited, before the send
    "award.sent": frozenset({"awarding", "confirming"}),
    "fill.durable": frozenset({"confirming"}),
    "outcome.durable": frozenset({"filled"}),
    # the award's batch is committed, its query tables not: the read-only view merges them
    "award.tables_pending": frozenset({"awarding"}),
}
RESTART_REASON = "engine restarted; no new award is made after a restart"


# --- the steps ------------------------------------------------------------------------------


def crash_request(case: Case, failpoint: str) -> StoreView:
    """`rfq request` dies at ``failpoint``; the store as the dead process left it."""
    crashed = run_rfq(case, "request", "--config", str(case.config), "--rfq", str(case.rfq),
                      failpoints=failpoint)
    assert killed(crashed), (
        f"expected death by SIGKILL at {failpoint}, rc {crashed.returncode}\n{output(crashed)}")
    return StoreView.read(case)


def recover(case: Case, before: StoreView) -> StoreView:
    """`rfq recover` exits 0 and reports every RFQ it found open with its final state."""
    done = run_rfq(case, "recover", "--config", str(case.config))
    assert done.returncode == 0, output(done)
    assert "none left open" in done.stdout, output(done)
    after = StoreView.read(case)
    for row in before.rfqs:
        if row.state in NON_TERMINAL:
            final = next(r.state for r in after.rfqs if r.rfq_id == row.rfq_id)
            assert f"{row.rfq_id}  {final}" in done.stdout, output(done)
    return after


def assert_chain_verifies(case: Case) -> None:
    assert case.checkpoint.exists(), "no chain-head checkpoint: verify could not detect a truncation"
    done = run_rfq(case, "audit", "verify", "--config", str(case.config))
    assert done.returncode == 0, output(done)
    assert "audit chain intact" in done.stdout, output(done)


# --- the invariants -------------------------------------------------------------------------


def assert_recovered(before: StoreView, after: StoreView, ledgers: list[ExecutionRecord]) -> None:
    """Everything the requirement says about a store after a crash and a recovery."""
    rfq = after.rfq
    rfq_id = rfq.rfq_id
    at_kill = before.rfq.state

    # The log is append-only: recovery added events, it changed none of those at the kill.
    assert after.events[: len(before.events)] == before.events

    # (1) Nothing is left in a non-terminal state.
    still_open = [(r.rfq_id, r.state) for r in after.rfqs if r.state in NON_TERMINAL]
    assert not still_open, f"RFQs left open after recovery: {still_open}"

    # (2) The last state change says why, and recovery says what it did.
    changes = after.of(EventType.RFQ_STATE_CHANGED, rfq_id)
    last = changes[-1]
    assert last["to"] == rfq.state
    assert isinstance(last["reason"], str) and last["reason"].strip()
    assert rfq.reason == last["reason"]
    by_recovery = changes[len(before.of(EventType.RFQ_STATE_CHANGED, rfq_id)):]
    if at_kill not in NON_TERMINAL:
        # An ended RFQ is not resumed; recovery only tells its dealers, if nobody had.
        assert after.events[: len(before.events)] == before.events
        added = after.events[len(before.events):]
        told_before = bool(before.of(EventType.OUTCOME_SENT, rfq_id))
        assert [e.type for e in added] == (
            [] if told_before else [EventType.OUTCOME_SENT, EventType.ENGINE_RECOVERED]), added
        assert after.recovered_rfqs() == []
    else:
        assert after.recovered_rfqs() == [rfq_id], "engine.recovered must name the RFQ it resumed"
        assert by_recovery, "recovery ended the RFQ without a state change"
        if at_kill == "created":  # nothing was awarded: the lifecycle runs again from the start
            assert by_recovery[0]["from"] == "created"
        elif at_kill == "open":
            assert (rfq.state, last["reason"]) == (
                "expired", "engine restarted during the response window; quotes were not acted on")
        else:  # awarding / confirming: settle what was decided, then end with what it filled
            if rfq.state == "filled":
                assert last["reason"] == "filled (awards settled after a restart)"
            else:
                assert rfq.state in {"partially_filled", "not_filled"}
                assert last["reason"].endswith(RESTART_REASON), last["reason"]
            if at_kill == "awarding" and len(by_recovery) > 1:
                assert by_recovery[0] == {"from": "awarding", "to": "confirming",
                                          "reason": "recovery: award(s) decided before the restart"}

    # (3) One fill per confirmed execution, never two; every award settled one way.
    award_ids = after.execution_ids(EventType.AWARD_DECIDED)
    fill_ids = after.execution_ids(EventType.FILL_RECORDED)
    confirmed = set(after.execution_ids(EventType.EXECUTION_CONFIRMED))
    rejected = set(after.execution_ids(EventType.EXECUTION_REJECTED))
    twice = sorted(eid for eid, n in Counter(fill_ids).items() if n > 1)
    assert not twice, f"executions filled twice: {twice}"
    assert set(fill_ids) <= set(award_ids), "a fill for an execution that was never awarded"
    assert set(fill_ids) == confirmed, "fills must be exactly the confirmed executions"
    assert len(fill_ids) == len(confirmed)
    assert not confirmed & rejected, f"executions both confirmed and rejected: {confirmed & rejected}"
    assert confirmed | rejected == set(award_ids), "an award was left unsettled"
    assert sorted(f.execution_id for f in after.fills) == sorted(fill_ids)
    assert {a.execution_id: a.status for a in after.awards} == {
        eid: "confirmed" if eid in confirmed else "rejected" for eid in award_ids}
    filled = sum((f.quantity for f in after.fills), Decimal(0))
    assert rfq.filled_quantity == filled
    assert (rfq.state == "filled") == (filled == rfq.quantity)
    assert (rfq.state == "partially_filled") == (0 < filled < rfq.quantity)

    # (4) No execution id is awarded twice, and recovery never makes a new award: it may
    #     only run the lifecycle afresh for an RFQ that had awarded nothing yet.
    assert len(award_ids) == len(set(award_ids)), f"an execution id awarded twice: {award_ids}"
    awarded_at_kill = before.execution_ids(EventType.AWARD_DECIDED)
    if at_kill == "created":
        assert awarded_at_kill == []
    else:
        assert award_ids == awarded_at_kill, "recovery made an award after the restart"

    # (5) The dealers' books: at most one trade per execution, only for durable awards, and
    #     the store's fills are exactly the dealers' confirmed trades. Exact equality holds
    #     because every desk is online at the restart, so query_execution answers every
    #     award (a desk that could not be asked would leave its award unresolved, never
    #     rejected by silence).
    booked = [r.execution_id for r in ledgers]
    assert len(booked) == len(set(booked)), f"a desk executed an award twice: {booked}"
    assert set(booked) <= set(award_ids), "a desk executed an award the store never recorded"
    assert all(r.rfq_id == rfq_id for r in ledgers)
    trades = {r.execution_id: r for r in ledgers if r.confirmed}
    fills = {f.execution_id: f for f in after.fills}
    assert set(trades) == set(fills), f"ledger trades {sorted(trades)} != store fills {sorted(fills)}"
    for eid, trade in trades.items():
        fill = fills[eid]
        assert (fill.rfq_id, fill.dealer_id, fill.price, fill.quantity, fill.dealer_trade_id) == (
            trade.rfq_id, trade.dealer_id, trade.price, trade.quantity, trade.dealer_trade_id)


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("point", sorted(POINTS))
def test_kill_at_failpoint_then_recover(point: str, tmp_path: Path) -> None:
    assert point in AT_KILL, f"new failpoint {point}: say what the store must show at it"
    case = make_case(tmp_path)
    before = crash_request(case, point)
    rfq_id = before.rfq.rfq_id
    assert before.rfq.state in AT_KILL[point]
    at_kill = read_ledgers(case, repaired=False)
    awarded = before.execution_ids(EventType.AWARD_DECIDED)

    if point == "rfq.submitted":
        assert [e.type for e in before.events if e.rfq_id == rfq_id] == [EventType.RFQ_SUBMITTED]
    if point in {"award.durable", "award.sent", "award.tables_pending"}:
        assert len(awarded) == 1 and not before.fills
    if point in {"award.durable", "award.tables_pending"}:  # durable, never sent: no desk knows
        assert at_kill == [] and not before.of(EventType.AWARD_SENT)
    if point == "award.tables_pending":  # the file's tables lag; the read-only view above did not
        raw = sqlite3.connect(case.db)
        try:
            assert raw.execute("SELECT state FROM rfqs").fetchall() == [("open",)]
            assert raw.execute("SELECT COUNT(*) FROM awards").fetchone() == (0,)
        finally:
            raw.close()
    if point == "award.sent":  # the desk booked it before the send returned
        assert [r.execution_id for r in at_kill] == awarded
    if point == "fill.durable":
        assert len(before.fills) == 1
    if point == "outcome.durable":
        assert not before.of(EventType.OUTCOME_SENT)

    after = recover(case, before)
    if point == "outcome.durable":  # ended, then killed before rfq.closed went out: sent now
        [sent] = after.of(EventType.OUTCOME_SENT, rfq_id)
        asked = before.of(EventType.RFQ_SENT, rfq_id)[0]["sent"]
        assert (sent["outcome"], sorted(sent["notified"]), sent["failed"]) == (
            "filled", sorted(asked), {})
        assert sent["reason"].startswith("engine restarted after the RFQ ended")
        [recovered] = after.of(EventType.ENGINE_RECOVERED)
        assert recovered == {"rfqs": [], "outcomes_sent": [rfq_id]}
        assert recover(case, after).events == after.events  # told once: a second restart is quiet
    ledgers = read_ledgers(case)
    assert_recovered(before, after, ledgers)

    if point in {"award.durable", "award.tables_pending"}:  # unknown to the desk: silence rejects
        assert after.rfq.state == "not_filled" and after.rfq.reason == RESTART_REASON
        [rejection] = after.of(EventType.EXECUTION_REJECTED)
        assert rejection["execution_id"] == awarded[0] and rejection["timeout"] is True
    if point == "rfq.sent":  # the window was cut short: the quotes are not acted on
        assert after.rfq.state == "expired"
    elif point not in {"award.durable", "award.tables_pending"}:  # desk-a, rank 1, confirms
        assert after.rfq.state == "filled"
    assert_chain_verifies(case)


def test_external_kill_after_award_decided(tmp_path: Path) -> None:
    """kill -9 from outside while the award is in flight (slow desks, slow confirms)."""
    case = make_case(tmp_path, desks=default_desks(latency_ms=100, confirm_latency_ms=800),
                     window_ms=1000, confirm_timeout_ms=1500)
    proc = start_rfq(case, "request", "--config", str(case.config), "--rfq", str(case.rfq))
    try:
        wait_for_event(case, EventType.AWARD_DECIDED, proc)
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert killed(proc), f"rc {proc.returncode}\n{output(proc, out, err)}"
    before = StoreView.read(case)
    assert before.rfq.state in {"awarding", "confirming"}, "the kill missed the award in flight"
    assert len(before.execution_ids(EventType.AWARD_DECIDED)) == 1 and not before.fills

    after = recover(case, before)
    assert_recovered(before, after, read_ledgers(case))
    assert_chain_verifies(case)


def test_dealer_confirmed_before_the_engine_heard_it(tmp_path: Path) -> None:
    """The desk books and confirms at once (confirm_latency 0); the engine dies at award.sent,
    before the confirm is durable. Recovery asks the desk and records the fill exactly once."""
    case = make_case(tmp_path, desks=default_desks(confirm_latency_ms=0))
    before = crash_request(case, "award.sent")
    [eid] = before.execution_ids(EventType.AWARD_DECIDED)
    [trade] = read_ledgers(case, repaired=False)
    assert trade.execution_id == eid and trade.confirmed, "the desk must have booked the trade"
    assert not before.of(EventType.EXECUTION_CONFIRMED) and not before.fills, \
        "the confirm became durable before the kill: this run did not exercise reconciliation"

    after = recover(case, before)
    assert_recovered(before, after, read_ledgers(case))
    [confirm] = after.of(EventType.EXECUTION_CONFIRMED)
    assert confirm["execution_id"] == eid and confirm["source"] == "reconciled"
    assert confirm["msg_id"] is None and confirm["dealer_trade_id"] == trade.dealer_trade_id
    [fill] = after.fills
    assert (fill.execution_id, fill.dealer_trade_id) == (eid, trade.dealer_trade_id)
    assert after.rfq.state == "filled"
    assert_chain_verifies(case)


def test_rejected_award_is_not_re_awarded_after_restart(tmp_path: Path) -> None:
    """The best desk rejects on last look; the engine dies before hearing it. Recovery learns
    the reject from the desk and ends the RFQ: the valid next-best quotes are not awarded."""
    desks = default_desks()
    desks["desk-a"] = DeskSettings("10", last_look_reject_rate=1.0)
    case = make_case(tmp_path, desks=desks)
    before = crash_request(case, "award.sent")
    [ranked] = before.of(EventType.QUOTES_RANKED)
    assert [r["dealer_id"] for r in ranked["ranking"]] == ["desk-a", "desk-b", "desk-c"]
    [eid] = before.execution_ids(EventType.AWARD_DECIDED)
    [booked] = read_ledgers(case, repaired=False)
    assert booked.execution_id == eid and not booked.confirmed

    after = recover(case, before)
    assert_recovered(before, after, read_ledgers(case))
    [rejection] = after.of(EventType.EXECUTION_REJECTED)
    assert rejection["execution_id"] == eid and rejection["timeout"] is False
    assert rejection["reason"].startswith("reconciled: the dealer reports it rejected")
    assert (after.rfq.state, after.rfq.reason) == ("not_filled", RESTART_REASON)
    assert_chain_verifies(case)


def test_rfq_sent_kill_leaves_the_window_open(tmp_path: Path) -> None:
    """Once the RFQ reached the dealers the store must say so (recovery treats 'created' as
    'nothing reached a dealer' and runs it again; 'open' is expired and the dealers told)."""
    case = make_case(tmp_path)
    before = crash_request(case, "rfq.sent")
    assert before.rfq.state == "open"
    [sent] = before.of(EventType.RFQ_SENT)
    assert sent["sent"] == ["desk-a", "desk-b", "desk-c"]

