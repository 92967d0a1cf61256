"""kill -9 between the award and the ExecutionReport, then ``rfq recover``: exactly one fill.

``rfq request`` runs as a process with one FIX desk (a QuickFIX acceptor) in its config.
The desk executes the award and holds its report; the engine is killed with SIGKILL. The
desk then reports while the engine is gone (QuickFIX stores the report for a resend).
``rfq recover`` resumes the session from the stored sequence numbers (no reset), sends a
ResendRequest for the gap, and settles the award through the desk: one execution at the
desk, one fill in the store, the audit chain intact.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

from rfq_engine.domain.events import EventType
from tests.fix.conftest import SYMBOL, DeskFactory
from tests.recovery.harness import (
    Case,
    DeskSettings,
    StoreView,
    killed,
    make_case,
    output,
    run_rfq,
    start_rfq,
)
from tests.recovery.harness import wait_for_event as wait_for_store_event


def fix_case(root: Path, port: int) -> Case:
    """The crash kit's config and RFQ, with ``desk-a`` a FIX desk on ``port``."""
    case = make_case(root, desks={"desk-a": DeskSettings("10")}, window_ms=600, confirm_timeout_ms=800)
    config = case.config.read_text(encoding="utf-8")
    expiry = json.loads(case.rfq.read_text(encoding="utf-8"))["legs"][0]["instrument"]["expiry"]
    config = config[: config.index("[[dealers]]")] + "\n".join([
        "[[dealers]]", 'id = "desk-a"', 'kind = "fix"', "[dealers.fix]", 'host = "127.0.0.1"',
        f"port = {port}", 'sender_comp_id = "ENGINE"', 'target_comp_id = "DESK-A"',
        f"state_dir = {json.dumps(str(root / 'fix-state'))}", "heartbeat_s = 5", "reconnect_min_ms = 50",
        "status_timeout_ms = 500", "clock_skew_ms = 0",
        "[dealers.fix.symbols]", f'"future:BTC:USD:{expiry}" = "{SYMBOL}"', "",
    ])
    case.config.write_text(config, encoding="utf-8")
    return case


async def test_kill_between_award_and_execution_report_then_recover(quickfix_desks: DeskFactory,
                                                                   tmp_path: Path) -> None:
    desk = await quickfix_desks("desk-a", sender="DESK-A")
    await desk.mode("hold")
    case = fix_case(tmp_path, desk.port)
    proc = start_rfq(case, "request", "--config", str(case.config), "--rfq", str(case.rfq))
    try:
        await asyncio.to_thread(wait_for_store_event, case, EventType.AWARD_SENT, proc)
        await desk.wait_for(lambda: desk.executed_count == 1, "the desk to execute the award")
        os.kill(proc.pid, signal.SIGKILL)
        out, err = await asyncio.to_thread(proc.communicate, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert killed(proc), f"rc {proc.returncode}\n{output(proc, out, err)}"
    before = await asyncio.to_thread(StoreView.read, case)
    assert before.rfq.state in {"awarding", "confirming"}, before.rfq.state
    assert not before.fills

    await desk.command("release")  # the report goes out while the engine is gone: QuickFIX stores it
    await desk.wait_for(lambda: bool(desk.outbound("8")), "the held report")
    done = await asyncio.to_thread(run_rfq, case, "recover", "--config", str(case.config))
    assert done.returncode == 0, output(done)
    after = await asyncio.to_thread(StoreView.read, case)
    assert after.rfq.state == "filled", output(done)
    assert len(after.fills) == 1 and desk.executed_count == 1
    assert after.execution_ids(EventType.AWARD_DECIDED) == before.execution_ids(EventType.AWARD_DECIDED)
    logons = desk.inbound("A")
    assert len(logons) == 2 and "|34=1|" not in logons[1] and "|141=Y|" not in logons[1]  # resumed
    assert desk.inbound("2"), "no ResendRequest for the report sent while the engine was down"
    assert desk.outbound("3") == []
    verified = await asyncio.to_thread(run_rfq, case, "audit", "verify", "--config", str(case.config))
    assert verified.returncode == 0, output(verified)
