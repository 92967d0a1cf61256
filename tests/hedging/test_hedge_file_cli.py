"""``rfq hedge report`` and ``rfq hedge risk`` as the real commands, after ``rfq hedge plan``
hedged through a real engine to simulated desks: the PDF read back, CSV and JSONL on stdout,
the risk figures and the program against the market, as JSON and as tables."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from pypdf import PdfReader

from tests.cli.clikit import config_text, write
from tests.hedging.test_cli_hedge import PROGRAMS, as_json, rfq

RISK = """
[collateral.desk-a]
initial_margin = { USD = "0.1" }
posted = { USD = "1000000" }

[risk]
depth = { "BTC-USD-FUT" = "10" }
"""


def test_report_and_risk_after_a_real_plan(tmp_path: Path) -> None:
    config = write(tmp_path / "rfq.toml", config_text("hedge.db") + PROGRAMS + RISK)
    done = as_json(rfq(["hedge", "plan", "monthly", "--config", str(config), "--json"], tmp_path))
    assert done["outcomes"][0]["state"] == "filled"
    period, target = done["period"], done["target"]
    (fill,) = done["outcomes"][0]["fills"]

    pdf = tmp_path / "hedge.pdf"
    wrote = rfq(["hedge", "report", "--config", str(config), "--program", "monthly", "--period", period,
                 "--format", "pdf", "--output", str(pdf), "--realized", "19"], tmp_path)
    assert wrote.returncode == 0, wrote.stderr
    head_seq, head_hash = wrote.stdout.split("audit chain head ")[1].split()
    verified = rfq(["audit", "verify", "--config", str(config)], tmp_path)
    assert verified.returncode == 0 and f"head seq {head_seq} hash {head_hash[:16]}" in verified.stdout
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert f"audit chain head {head_hash}" in text and target in text and fill["price"] in text

    lines = [json.loads(line) for line in rfq(
        ["hedge", "report", "--config", str(config), "--program", "monthly", "--period", period,
         "--format", "jsonl"], tmp_path).stdout.splitlines()]
    trade = next(line for line in lines if line["record"] == "trade")
    assert trade["price"] == fill["price"] and trade["dealer"] == fill["dealer_id"]
    production = next(line for line in lines if line["record"] == "production")
    assert production["hedged"] == target and production["realized"] is None
    csv_out = rfq(["hedge", "report", "--config", str(config), "--program", "monthly", "--period", period,
                   "--format", "csv"], tmp_path).stdout
    assert f"chain,head_hash,{head_hash}" in csv_out.splitlines()

    risk = as_json(rfq(["hedge", "risk", "--config", str(config), "--json",
                        "--realized", f"monthly:{period}=19"], tmp_path))
    (liquid,) = risk["liquidity"]
    assert Decimal(liquid["ratio"]) == Decimal(target) / 10
    assert {a["kind"] for a in risk["alerts"]} >= {"liquidity"}
    parties = {c["dealer"]: c for c in risk["counterparties"]}
    assert fill["dealer_id"] in parties
    (program,) = risk["performance"]
    (row,) = program["periods"]
    assert row["period"] == period and row["fills"] == 1 and row["realized"] == "19"
    assert Decimal(row["hedged_value"]) == Decimal(row["unhedged_value"]) + Decimal(row["hedge_pnl"])
    tables = rfq(["hedge", "risk", "--config", str(config)], tmp_path)
    assert tables.returncode == 0, tables.stderr
    assert "program monthly against the market" in tables.stdout and "liquidity:" in tables.stdout
