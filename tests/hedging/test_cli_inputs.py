"""``rfq hedge collateral post`` and ``rfq hedge production record`` (the real commands in child
processes, over SQLite): a desk short of collateral halts the program; collateral posted as an
audited event lets the next real scheduler run hedge; production recorded is what the hedge
file and the performance report use; the chain verifies; bad input is refused with the field."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from pypdf import PdfReader

from tests.cli.clikit import sql
from tests.hedging.test_cli_collateral import _at, _config
from tests.hedging.test_cli_hedge import as_json, rfq


def test_collateral_posted_lets_the_next_run_hedge_and_production_is_recorded(tmp_path: Path) -> None:
    config = _config(tmp_path, "5000", "halt")
    args = ["hedge", "run", "--config", str(config), "--at", _at().isoformat(), "--json"]
    (halted,) = as_json(rfq(args, tmp_path))["decisions"]
    assert halted["action"] == "wait" and any("the config's figure" in r for r in halted["reasons"])

    for desk in ("desk-a", "desk-b", "desk-c"):
        posted = as_json(rfq(["hedge", "collateral", "post", "--config", str(config), "--dealer", desk,
                              "--amount", "1000000", "--currency", "usd", "--by", "erin",
                              "--note", "wire 88412", "--json"], tmp_path))
        assert posted["type"] == "collateral.posted" and posted["actor"] == "erin"
        assert posted["payload"] == {"dealer": desk, "account": "desk", "amounts": {"USD": "1000000"},
                                     "posted_by": "erin", "note": "wire 88412"}
    margin = as_json(rfq(["hedge", "margin", "--config", str(config), "--json"], tmp_path))
    assert margin["collateral_sources"] == {"desk-a": "posted", "desk-b": "posted", "desk-c": "posted"}

    later = (_at() + timedelta(minutes=6)).isoformat()
    (sent,) = as_json(rfq([*args[:-3], "--at", later, "--json"], tmp_path))["decisions"]
    assert sent["action"] == "hedge" and [o["state"] for o in sent["outcomes"]] == ["filled"]
    period = sent["period"]

    recorded = rfq(["hedge", "production", "record", "--config", str(config), "--program", "monthly",
                    "--period", period, "--quantity", "18.75", "--by", "erin"], tmp_path)
    assert recorded.returncode == 0 and "recorded production.realized" in recorded.stdout
    lines = [json.loads(line) for line in rfq(
        ["hedge", "report", "--config", str(config), "--program", "monthly", "--period", period,
         "--format", "jsonl"], tmp_path).stdout.splitlines()]
    production = next(line for line in lines if line["record"] == "production")
    assert production["realized"] == "18.75" and production["source"] == "recorded"
    assert production["realized_record"]["recorded_by"] == "erin"
    pdf = tmp_path / "hedge.pdf"
    wrote = rfq(["hedge", "report", "--config", str(config), "--program", "monthly", "--period", period,
                 "--format", "pdf", "--output", str(pdf)], tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "realized source recorded (recorded by erin at" in " ".join(text.split())
    risk = as_json(rfq(["hedge", "risk", "--config", str(config), "--json"], tmp_path))
    (row,) = risk["performance"][0]["periods"]
    assert (row["realized"], row["production_source"], row["realized_source"]) == ("18.75", "realized",
                                                                                   "recorded")
    # rfq hedge risk reads the posted collateral too, not the config's figure
    assert {d["dealer"]: d["collateral_source"] for d in risk["desks"]} == {
        "desk-a": "posted", "desk-b": "posted", "desk-c": "posted"}

    db = tmp_path / "hedge.db"
    kinds = [t for (t,) in sql(db, "SELECT type FROM audit_events WHERE actor = 'erin' ORDER BY seq")]
    assert kinds == ["collateral.posted"] * 3 + ["production.realized"]
    verified = rfq(["audit", "verify", "--config", str(config)], tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_bad_input_is_refused_with_the_field_and_writes_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, "5000", "halt")
    for extra, field in [(["--dealer", "nobody", "--amount", "1", "--currency", "USD"], "dealer"),
                         (["--dealer", "desk-a", "--amount", "1", "--currency", "BTC"], "amounts.BTC"),
                         (["--dealer", "desk-a", "--amount", "-5", "--currency", "USD"], "amounts.USD"),
                         (["--dealer", "desk-a", "--amount", "1e999", "--currency", "USD"], "amounts.USD")]:
        done = rfq(["hedge", "collateral", "post", "--config", str(config), *extra, "--by", "erin"], tmp_path)
        assert done.returncode == 1 and field in done.stderr, (extra, done.stderr)
    done = rfq(["hedge", "production", "record", "--config", str(config), "--program", "monthly",
                "--period", "2026-13", "--quantity", "1", "--by", "erin"], tmp_path)
    assert done.returncode == 1 and "period" in done.stderr
    assert not (tmp_path / "hedge.db").exists()
