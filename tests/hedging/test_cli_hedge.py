"""``rfq hedge``: scenario, forecast and argument errors in process (``main(argv)``); plan, roll
and positions as the real command in a child process, including a SIGKILL between "RFQ
created" and "fill"."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.cli.main import main
from rfq_engine.store import SqlAuditStore
from tests.cli.clikit import TIMEOUT_S, config_text, sql, store_files, write

PROGRAMS = """
[forecast]
hashrate = "1 EH/s"
difficulty = "100000000000000"

[programs.monthly]
strategy = "future"
mandate = "treasury"
dealers = ["desk-a", "desk-b", "desk-c"]
hedge_ratio = "0.5"
schedule = "0 14 * * 5L"
timezone = "UTC"
window_ms = 1000
"""


def rfq(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.pop("RFQ_AUDIT_CHECKPOINT_KEY", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "rfq_engine.cli.main", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=TIMEOUT_S, check=False)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> subprocess.CompletedProcess[str]:
    """``rfq <args>`` in this process (pure commands that open no store)."""
    code = main(args)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def make_config(tmp_path: Path) -> Path:
    return write(tmp_path / "rfq.toml", config_text("hedge.db") + PROGRAMS)


def test_scenario_collar_reproduces_worked_example_a(capsys: pytest.CaptureFixture[str]) -> None:
    table = as_json(run(["hedge", "scenario", "--strategy", "collar", "--spot", "40000", "--cost", "30000",
                         "--put", "35000", "--call", "50000", "--premium", "0", "--quantity", "100",
                         "--prices", "25000,40000,60000", "--json"], capsys))
    assert [(r["hedged_revenue"], r["hedged_pnl"], r["unhedged_pnl"]) for r in table["rows"]] == [
        ("35000", "5000", "-5000"), ("40000", "10000", "10000"), ("50000", "20000", "30000")]
    text = run(["hedge", "scenario", "--strategy", "collar", "--spot", "40000", "--cost", "30000",
                "--put", "35000", "--call", "50000", "--quantity", "100", "--prices", "25000"], capsys)
    assert text.returncode == 0 and "35000" in text.stdout and "hedged P&L" in text.stdout


def test_scenario_ndf_reproduces_worked_example_b(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["hedge", "scenario", "--strategy", "ndf", "--unit", "60", "--hashrate-ph", "50", "--days", "30",
            "--power-mw", "1.5", "--power-price", "75", "--settle", "45,75", "--json"]
    table = as_json(run(base, capsys))
    assert (table["contracts"], table["locked_value"], table["power"]["cost"], table["profit_floor"],
            table["profit_floor_per_mwh"]) == ("1500", "90000", "81000", "9000", "8.33")
    assert [(r["exposure"], r["ndf_settlement"]) for r in table["rows"]] == [("67500", "22500"),
                                                                            ("112500", "-22500")]
    opex = as_json(run([*base, "--opex-only"], capsys))
    assert (opex["contracts"], opex["revenue_floor"]) == ("1350", "81000")


def test_scenario_errors_name_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    done = run(["hedge", "scenario", "--strategy", "collar", "--spot", "40000", "--put", "35000",
                "--prices", "1,x"], capsys)
    assert done.returncode == 1 and "--prices[1]" in done.stderr
    done = run(["hedge", "scenario", "--strategy", "ndf", "--unit", "60"], capsys)
    assert done.returncode == 1 and "--hashrate-ph: is required" in done.stderr


def test_forecast_from_flags_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = as_json(run(["hedge", "forecast", "--hashrate", "1 EH/s", "--difficulty", "100000000000000",
                       "--btc-price", "100000", "--period", "2026-12", "--months", "2", "--json"], capsys))
    assert out["btc_per_day"] == "0.628642737865447998046875"
    assert out["hashprice_usd_per_ph_day"] == "62.8642737865447998046875"
    assert [p["period"] for p in out["periods"]] == ["2026-12", "2027-01"]
    assert out["periods"][0]["btc"] == "19.487924873828887939453125"
    config = make_config(tmp_path)
    from_config = as_json(run(["hedge", "forecast", "--config", str(config), "--program", "monthly",
                               "--uptime", "0.5", "--json"], capsys))
    assert from_config["btc_price"] == "40000" and from_config["inputs"]["uptime"] == "0.5"
    assert store_files(tmp_path) == []


@pytest.mark.parametrize(("flags", "message"), [
    (["--hashrate", "5 GH/s"], "--hashrate: must be a number with a unit (TH/s, PH/s, EH/s)"),
    (["--hashrate-ph", "50", "--uptime", "1.5"], "--uptime: must be a fraction of time in (0, 1]"),
    (["--hashrate-ph", "50"], "--difficulty: is required"),
    (["--hashrate-ph", "50", "--difficulty", "-1"], "--difficulty: must be positive"),
])
def test_forecast_errors_carry_units(capsys: pytest.CaptureFixture[str], flags: list[str],
                                    message: str) -> None:
    done = run(["hedge", "forecast", *flags], capsys)
    assert done.returncode == 1 and message in done.stderr, done.stderr


@pytest.mark.slow
def test_plan_dry_run_then_plan_then_positions(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    dry = as_json(rfq(["hedge", "plan", "monthly", "--config", str(config), "--dry-run", "--json"], tmp_path))
    assert dry["dry_run"] is True and dry["action"] == "hedge" and len(dry["rfqs"]) == 1
    assert store_files(tmp_path) == []  # a dry run writes nothing, not even a database
    cid = dry["rfqs"][0]["client_rfq_id"]
    target = dry["target"]

    done = as_json(rfq(["hedge", "plan", "monthly", "--config", str(config), "--json"], tmp_path))
    assert done["action"] == "hedge" and done["outcomes"][0]["state"] == "filled"
    assert sum(float(f["quantity"]) for f in done["outcomes"][0]["fills"]) == float(target)

    again = as_json(rfq(["hedge", "plan", "monthly", "--config", str(config), "--json"], tmp_path))
    assert again["action"] == "nothing" and again["rfqs"] == []
    rows = sql(tmp_path / "hedge.db", "SELECT client_rfq_id, state FROM rfqs")
    assert rows == [(cid, "filled")]

    dry_roll = as_json(rfq(["hedge", "roll", "monthly", "--config", str(config), "--dry-run", "--json"],
                           tmp_path))
    assert dry_roll["rfqs"] == [] and any("nothing to roll" in r for r in dry_roll["reasons"])

    positions = as_json(rfq(["hedge", "positions", "--config", str(config), "--json"], tmp_path))
    (position,) = positions["positions"]
    assert position["quantity"] == f"-{target}" and position["kind"] == "future"
    coverage = {c["period"]: c for c in positions["coverage"]}
    assert coverage[dry["period"]]["hedged"] == target
    text = rfq(["hedge", "positions", "--config", str(config)], tmp_path)
    assert text.returncode == 0 and "coverage:" in text.stdout


def stored_rfqs(db: Path) -> list[tuple[str, str | None, str]]:
    """(rfq_id, client_rfq_id, state) of every rfq, as a read-only store answers."""

    async def read() -> list[tuple[str, str | None, str]]:
        async with SqlAuditStore(f"sqlite+aiosqlite:///{db}", readonly=True) as store:
            return [(r.rfq_id, r.client_rfq_id, r.state) for r in await store.rfqs()]

    return asyncio.run(read())


@pytest.mark.slow
@pytest.mark.parametrize("point", ["rfq.submitted", "fill.durable"])
def test_a_crash_between_rfq_created_and_fill_never_hedges_twice(tmp_path: Path, point: str) -> None:
    config = make_config(tmp_path)
    killed = rfq(["hedge", "plan", "monthly", "--config", str(config), "--json"], tmp_path,
                 env={"RFQ_FAILPOINTS": point})
    assert killed.returncode == -9, killed.stderr
    rows = stored_rfqs(tmp_path / "hedge.db")  # the file's tables may lag its events
    assert len(rows) == 1 and rows[0][2] not in ("filled", "not_filled")
    decided = sql(tmp_path / "hedge.db", "SELECT count(*) FROM audit_events WHERE type = 'program.decided'")
    # killed before the decision was recorded (rfq.submitted) or after it (fill.durable)
    assert decided == [(0,)] if point == "rfq.submitted" else [(1,)]

    rerun = rfq(["hedge", "plan", "monthly", "--config", str(config), "--json"], tmp_path)
    assert rerun.returncode in (0, 2), rerun.stderr
    after = sql(tmp_path / "hedge.db", "SELECT rfq_id, client_rfq_id FROM rfqs")
    assert after == [(rows[0][0], rows[0][1])]  # recovery settled it; no second RFQ
    fills = sql(tmp_path / "hedge.db", "SELECT sum(quantity) FROM fills")
    dry = as_json(rfq(["hedge", "plan", "monthly", "--config", str(config), "--dry-run", "--json"],
                      tmp_path))
    assert float(fills[0][0] or 0) <= float(dry["target"])
    if point == "fill.durable":
        assert dry["action"] == "nothing"


def test_plan_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(tmp_path)
    done = run(["hedge", "plan", "nope", "--config", str(config)], capsys)
    assert done.returncode == 1 and "unknown program 'nope'; configured: monthly" in done.stderr
    approval = write(tmp_path / "approval.toml", config_text("hedge.db") + PROGRAMS + "approval = true\n")
    done = run(["hedge", "plan", "monthly", "--config", str(approval)], capsys)
    assert done.returncode == 1 and "--approver" in done.stderr
    assert store_files(tmp_path) == []


def test_run_at_a_chosen_time_agrees_with_the_dry_run_plan(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``rfq hedge run --at``: the scheduler's first start on a fresh store in the middle of
    a month hedges the coming month, the period ``rfq hedge plan --dry-run`` previews."""
    from datetime import UTC, datetime, timedelta

    from rfq_engine.domain.values import utc_now
    from tests.hedging.kit import this_months_slot

    config = make_config(tmp_path)
    today = utc_now()
    at = datetime(today.year, today.month, 10, 9, 30, tzinfo=UTC).isoformat()
    args = ["hedge", "run", "--config", str(config), "--at", at, "--json"]
    dry = as_json(run([*args, "--dry-run"], capsys))  # dry runs in process: they start no engine
    assert store_files(tmp_path) == []  # writes nothing
    (planned,) = dry["decisions"]
    preview = as_json(run(["hedge", "plan", "monthly", "--config", str(config), "--dry-run", "--json"],
                          capsys))
    assert planned["period"] == preview["period"] and planned["trigger"] == "catch_up"
    assert planned["action"] == "hedge" and planned["target"] == preview["target"]
    assert "which had begun" in planned["reasons"][0]

    ran = as_json(rfq(args, tmp_path))
    (decision,) = ran["decisions"]
    assert (decision["period"], decision["trigger"], decision["action"]) == (
        preview["period"], "catch_up", "hedge")
    assert [o["state"] for o in decision["outcomes"]] == ["filled"]
    assert as_json(rfq(args, tmp_path))["decisions"] == []  # once
    on_time = (this_months_slot() + timedelta(minutes=4)).isoformat()
    again = as_json(rfq([*args[:-3], "--at", on_time, "--json"], tmp_path))
    assert again["decisions"] == []  # this month's slot plans the same period: decided already
    assert sql(tmp_path / "hedge.db", "SELECT count(*) FROM rfqs") == [(1,)]
    bad = run(["hedge", "run", "--config", str(config), "--at", "2026-12-25 14:00"], capsys)
    assert bad.returncode == 1 and "--at" in bad.stderr and "time zone" in bad.stderr
