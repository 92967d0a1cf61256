"""A full disk under a one-shot ``rfq request`` (SQLite): the file-size limit of the running
process is lowered (``prlimit --pid``) once the award is durable, so the dealer's confirm
cannot be committed; the desk has booked the trade meanwhile (its ledger)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rfq_engine.domain.events import EventType
from tests.recovery.harness import (
    Case,
    StoreView,
    default_desks,
    make_case,
    output,
    read_ledgers,
    run_rfq,
    start_rfq,
    wait_for_event,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux prlimit")]

EXIT_OUTCOME_UNKNOWN = 6


def slow_confirm_case(root: Path, *store_lines: str) -> Case:
    desks = default_desks(confirm_latency_ms=1500)
    case = make_case(root, desks={"desk-a": desks["desk-a"]}, confirm_timeout_ms=4000)
    text = case.config.read_text(encoding="utf-8")
    case.config.write_text(text.replace("[store]\n", "[store]\n" + "".join(
        f"{line}\n" for line in store_lines), 1), encoding="utf-8")
    return case


def limit_file_size(pid: int, limit: int | str) -> None:
    """The soft limit only: raising it again needs no privilege."""
    subprocess.run(["prlimit", f"--pid={pid}", f"--fsize={limit}:"], check=True)


def fill_the_disk(case: Case, pid: int) -> None:
    """From now on no file of the process may grow: the WAL and the checkpoint log are
    past the limit, the desk's ledger (tiny) is not."""
    ledger = max((p.stat().st_size for p in case.ledgers.values() if p.exists()), default=0)
    limit = max(ledger + 4096, 8192)
    assert os.stat(f"{case.db}-wal").st_size > limit
    limit_file_size(pid, limit)


def test_disk_full_in_last_look_exits_outcome_unknown_and_recover_books_it(tmp_path: Path) -> None:
    """Issue 15, defect 3: it used to exit 2 ("did not trade") though the desk booked."""
    case = slow_confirm_case(tmp_path, "outage_limit_s = 1")
    proc = start_rfq(case, "request", "--config", str(case.config), "--rfq", str(case.rfq))
    try:
        wait_for_event(case, EventType.AWARD_DECIDED, proc)
        fill_the_disk(case, proc.pid)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_OUTCOME_UNKNOWN, output(proc, out, err)
    assert "do not re-send" in err.lower(), err
    booked = read_ledgers(case, repaired=False)
    assert len(booked) == 1 and booked[0].confirmed  # the desk booked
    done = run_rfq(case, "recover", "--config", str(case.config))
    assert done.returncode == 0, output(done)
    after = StoreView.read(case)
    assert after.rfq.state == "filled", after.rfq
    assert after.execution_ids(EventType.FILL_RECORDED) == [booked[0].execution_id]
    verified = run_rfq(case, "audit", "verify", "--config", str(case.config))
    assert verified.returncode == 0, output(verified)


def test_disk_full_in_last_look_then_space_again_fills_and_exits_0(tmp_path: Path) -> None:
    """The same full disk, freed within the outage limit: the confirm waited in memory, the
    writer's retry commits it, the RFQ fills; the kill switch engaged meanwhile (audited)."""
    case = slow_confirm_case(tmp_path, "outage_limit_s = 60")
    proc = start_rfq(case, "request", "--config", str(case.config), "--rfq", str(case.rfq))
    try:
        wait_for_event(case, EventType.AWARD_DECIDED, proc)
        fill_the_disk(case, proc.pid)
        time.sleep(2.5)  # the desk confirms after 1.5 s; its commit fails meanwhile
        assert proc.poll() is None
        limit_file_size(proc.pid, "unlimited")
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output(proc, out, err)
    assert "audit store unavailable" in err and "audit store back" in err, err
    after = StoreView.read(case)
    assert after.rfq.state == "filled"
    assert [p["halted"] for p in after.of(EventType.KILL_SWITCH)] == [True]
    verified = run_rfq(case, "audit", "verify", "--config", str(case.config))
    assert verified.returncode == 0, output(verified)
