"""A slow disk under the audit store: ``fsync``/``fdatasync`` of the store's files (the
SQLite database, its WAL, the checkpoint log) take hundreds of milliseconds, in a real
``rfq request`` process (``slowfsync.c``, built here and loaded with LD_PRELOAD; the
simulated desks' ledgers keep a normal disk). Nothing fails, so nothing trips the
outage kill switch: the engine must stay correct while every decision waits, and say
that the store is slow.

- Write-ahead holds: a desk books an award only after the decision's commit, so at
  least one slow fsync after ``award.decided`` was stamped.
- The desks' bookings and the store's fills agree, one execution per award, whatever
  the slowness did to the award's deadlines.
- The log says the store is slow; the exit code says what happened; the chain verifies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rfq_engine.domain.events import EventType
from tests.recovery.harness import (
    PROCESS_TIMEOUT_S,
    Case,
    StoreView,
    default_desks,
    make_case,
    output,
    read_ledgers,
    run_rfq,
)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")]

EXIT_FILLED, EXIT_NOT_FILLED = 0, 2


def request_on_a_slow_disk(case: Case, shim: Path, delay_ms: int
                           ) -> subprocess.CompletedProcess[str]:
    control = case.root / "fsync-delay-ms"
    control.write_text(str(delay_ms), encoding="ascii")
    env_prefix = ["env", f"LD_PRELOAD={shim}", f"SLOW_FSYNC_MATCH={case.db.name}",
                  f"SLOW_FSYNC_CONTROL={control}"]
    proc = subprocess.run(
        [*env_prefix, *_rfq_command("request", "--config", str(case.config), "--rfq",
                                    str(case.rfq))],
        cwd=case.root, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S * 3,
        check=False)
    control.write_text("0", encoding="ascii")
    return proc


def _rfq_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "rfq_engine.cli.main", *args]


def test_a_slow_disk_delays_every_award_until_it_is_durable_and_the_rfq_fills(
        tmp_path: Path, shim: Path) -> None:
    delay_ms = 600
    case = make_case(tmp_path, desks={"desk-a": default_desks()["desk-a"]},
                     window_ms=400, confirm_timeout_ms=5000)
    done = request_on_a_slow_disk(case, shim, delay_ms)
    assert done.returncode == EXIT_FILLED, output(done)
    assert "audit store slow" in done.stderr, output(done)

    view = StoreView.read(case)
    assert view.rfq.state == "filled"
    [decided] = view.of(EventType.AWARD_DECIDED)
    [booking] = read_ledgers(case)
    assert booking.confirmed and booking.execution_id == decided["execution_id"]
    decided_at = next(e.ts for e in view.events if e.type == EventType.AWARD_DECIDED)
    # The award left only once its decision was durable: one slow fsync at least.
    assert (booking.booked_at - decided_at).total_seconds() >= delay_ms / 1000 * 0.9, (
        booking.booked_at, decided_at)
    assert view.execution_ids(EventType.FILL_RECORDED) == [booking.execution_id]
    verified = run_rfq(case, "audit", "verify", "--config", str(case.config))
    assert verified.returncode == 0, output(verified)


def test_a_disk_slower_than_the_confirm_window_trades_nothing_and_says_so(
        tmp_path: Path, shim: Path) -> None:
    """Each commit takes longer than the award's whole confirm window (900 ms against
    600 ms): the award is durable only after its ``confirm_by``. The engine's timer has
    fired by then (the outcome is unknown until the dealer answers), the award still goes
    (the decision is durable), and the desk refuses an award past its deadline. No
    execution anywhere, the RFQ not filled, exit 2; nothing lost. (A store that slow
    cannot trade: the log's "audit store slow" and ``rfq_audit_slow_commits`` say why.)"""
    case = make_case(tmp_path, desks={"desk-a": default_desks()["desk-a"]},
                     window_ms=400, confirm_timeout_ms=600)
    done = request_on_a_slow_disk(case, shim, 900)
    assert done.returncode == EXIT_NOT_FILLED, output(done)
    assert "audit store slow" in done.stderr, output(done)
    view = StoreView.read(case)
    assert view.rfq.state == "not_filled", view.rfq
    assert [r for r in read_ledgers(case) if r.confirmed] == []
    assert view.fills == []
    [decided] = view.of(EventType.AWARD_DECIDED)
    [unknown] = view.of(EventType.EXECUTION_UNKNOWN)
    [rejected] = view.of(EventType.EXECUTION_REJECTED)
    assert decided["execution_id"] == unknown["execution_id"] == rejected["execution_id"]
    verified = run_rfq(case, "audit", "verify", "--config", str(case.config))
    assert verified.returncode == 0, output(verified)
