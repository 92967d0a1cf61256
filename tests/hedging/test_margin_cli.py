"""``rfq hedge margin`` as the real command: a future sold through a real engine to simulated
desks, then the margin report of the desk that filled it, from the store."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from pathlib import Path

from tests.cli.clikit import config_text, rfq_body, write, write_rfq
from tests.hedging.test_cli_hedge import as_json, rfq

COLLATERAL = """
[collateral.desk-a]
initial_margin = { USD = "0.1" }
threshold = "0"
minimum_transfer = "100000"
eligible = { USD = "0", BTC = "0.2" }
"""


def test_margin_command_reads_the_desks_fills_from_the_store(tmp_path: Path) -> None:
    config = write(tmp_path / "rfq.toml", config_text("hedge.db") + COLLATERAL)
    body = rfq_body()  # desk-a always quotes best
    done = rfq(["request", "--config", str(config), "--rfq", str(write_rfq(tmp_path / "r.json", body)),
                "--json"], tmp_path)
    assert done.returncode == 0, done.stderr

    report = as_json(rfq(["hedge", "margin", "--config", str(config), "--shock", "0.3", "--shock", "-0.3",
                          "--days", "1", "--json"], tmp_path))
    (desk,) = report["desks"]
    (row,) = desk["positions"]
    assert desk["dealer"] == "desk-a" and row["quantity"] == "-10" and row["currency"] == "USD"
    positions = as_json(rfq(["hedge", "positions", "--config", str(config), "--json"], tmp_path))
    price = Decimal(positions["positions"][0]["average_price"])
    assert Decimal(row["notional"]) == 10 * price
    assert Decimal(desk["initial_margin_usd"]) == 10 * price * Decimal("0.1")
    # today: nothing posted, but the shortfall (the initial margin, ~40,000) is below the 100,000 MTA
    assert desk["call"]["kind"] == "none" and desk["posted_value_usd"] == "0"
    up, down = report["forecast"]
    assert (up["shock"], down["shock"]) == ("0.3", "-0.3")
    (call,) = up["desks"][0]["calls"]  # BTC +30%: the short future loses ~120,000 in a day
    assert call["kind"] == "deliver" and Decimal(call["usd"]) > 100000
    assert up["desks"][0]["first_call_day"] == 1
    # nothing posted before: the whole requirement, rounded up to the cent
    assert Decimal(call["usd"]) == Decimal(call["required_usd"]).quantize(Decimal("0.01"), ROUND_CEILING)
    assert down["desks"][0]["calls"] == []

    posted = as_json(rfq(["hedge", "margin", "--config", str(config), "--posted", "desk-a:BTC=1",
                          "--json"], tmp_path))
    assert posted["desks"][0]["posted"] == {"BTC": "1"}
    assert posted["desks"][0]["posted_value_usd"] == "32000"  # 1 BTC x 40,000 x (1 - 0.2)

    text = rfq(["hedge", "margin", "--config", str(config), "--shock", "0.3", "--days", "1"], tmp_path)
    assert text.returncode == 0, text.stderr
    assert "desk-a:" in text.stdout and "margin-call forecast" in text.stdout and "call: none" in text.stdout

    bad = rfq(["hedge", "margin", "--config", str(config), "--posted", "desk-z:USD=1"], tmp_path)
    assert bad.returncode == 1 and "no [collateral.desk-z] agreement" in bad.stderr
    bad = rfq(["hedge", "margin", "--config", str(config), "--shock", "-1"], tmp_path)
    assert bad.returncode == 1 and "shock" in bad.stderr


def test_margin_command_needs_an_agreement(tmp_path: Path) -> None:
    config = write(tmp_path / "rfq.toml", config_text("hedge.db"))
    done = rfq(["hedge", "margin", "--config", str(config)], tmp_path)
    assert done.returncode == 1 and "no [collateral.<dealer>] agreement" in done.stderr
