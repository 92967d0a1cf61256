"""The hedge file: effectiveness functions on a known series, and the file of a real scheduler
run exported as CSV, JSONL and PDF (the PDF read back with pypdf)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from rfq_engine.domain.pricing import fair_price
from rfq_engine.hedging.effectiveness import critical_terms, dollar_offset, offset_effective, regression
from rfq_engine.hedging.evidence import load_hedge_file
from rfq_engine.hedging.hedgefile import to_csv, to_jsonl
from rfq_engine.hedging.hedgepdf import hedge_file_pdf
from rfq_engine.hedging.positions import parse_instrument_key
from rfq_engine.hedging.scheduler import coming_period
from tests.hedging.conftest import Open
from tests.hedging.kit import after, program, snapshot, this_months_slot

D = Decimal
SLOT = this_months_slot()
PERIOD = coming_period(program(), SLOT)


def test_regression_on_a_known_series() -> None:
    fit = regression([D(1), D(2), D(3), D(4), D(5)], [D(-1), D(-2), D(-3), D(-4), D(-6)])
    assert fit.n == 5 and fit.slope == D("-1.2") and fit.intercept == D("0.4")
    assert fit.r_squared == D(144) / D(148) == D("0.9729729729729729729729729730")
    assert fit.effective is True
    flat = regression([D(1), D(2), D(3)], [D(-2), D(-4), D(-6)])
    assert flat.slope == D(-2) and flat.r_squared == D(1) and flat.effective is False  # over-hedged
    assert regression([D(1), D(1)], [D(2), D(3)]).slope is None
    assert regression([D(1)], [D(2)]).effective is None


def test_dollar_offset_band_and_critical_terms() -> None:
    assert dollar_offset(D(-95), D(100)) == D("0.95") and offset_effective(D("0.95")) is True
    assert dollar_offset(D(-70), D(100)) == D("0.7") and offset_effective(D("0.7")) is False
    assert dollar_offset(D(-125), D(100)) == D("1.25") and offset_effective(D("1.25")) is True
    assert dollar_offset(D(5), D(0)) is None and offset_effective(None) is None
    terms = critical_terms(item_underlying="BTC", item_quantity=D("19.48"), period_end="2026-12-31",
                           hedge_underlying="BTC", hedge_quantity=D("-9.74"), hedge_last_date="2027-01-29")
    assert [(t["term"], t["match"]) for t in terms] == [("underlying", True), ("quantity", True),
                                                        ("maturity", True)]
    short = critical_terms(item_underlying="BTC", item_quantity=D(5), period_end="2026-12-31",
                           hedge_underlying="ETH", hedge_quantity=D(6), hedge_last_date="2026-12-25")
    assert [t["match"] for t in short] == [False, False, False]


async def test_hedge_file_of_a_real_run_as_csv_jsonl_and_pdf(open_system: Open, tmp_path: Path) -> None:
    system = await open_system({"p": program()}, lambda: after(SLOT))
    (decision,) = await system.scheduler.run_due(after(SLOT))
    assert await system.settle(decision.rfq_ids) == ["filled"]
    await system.store.flush()
    today = SLOT.date()
    moved = replace(snapshot(), spot={"BTC": D(44000)})
    hedge_file = await load_hedge_file(system.store, name="p", program=program(), period=PERIOD,
                                       snapshot=moved, today=today, realized=D("18.5"))
    head = await system.store.verify()
    assert hedge_file["chain"] == {"head_seq": head.head_seq, "head_hash": head.head_hash}
    (trade,) = hedge_file["trades"]
    fill = (await system.store.fills(decision.rfq_ids[0]))[0]
    assert trade["rfq_id"] == decision.rfq_ids[0] and trade["price"] == str(fill.price)
    assert trade["side"] == "sell" and trade["decision"]["state"] == "filled"
    assert trade["decision"]["winner"] == fill.dealer_id and trade["decision"]["mandate"] == "pass"
    target = D(decision.to_dict()["target"])
    production = hedge_file["production"]
    assert D(production["hedged"]) == target
    forecast = D(decision.to_dict()["forecast"]["quantity"])
    assert D(production["forecast"]) == forecast
    assert D(production["difference"]) == D("18.5") - forecast
    assert D(production["hedge_ratio_on_realized"]) == target / D("18.5")  # 28 digits
    designation = hedge_file["designation"]
    (key,) = designation["instruments"]
    assert designation["hedge_ratio"] == "0.5" and key.startswith("BTC-USD-FUT-")

    tests = hedge_file["effectiveness"]
    assert [t["match"] for t in tests["critical_terms"]] == [True, True, True]
    offset = tests["dollar_offset"]
    assert D(offset["item_change"]) == target * 4000
    future_now = fair_price(parse_instrument_key(key), moved, today)
    assert D(offset["hedge_change"]) == (fill.price - future_now) * target
    assert offset["effective"] is True
    fit = tests["regression"]
    assert fit["n"] == 6 and D(fit["r_squared"]) == 1 and fit["effective"] is True
    # the model future moves with spot in proportion F / S: the slope is exactly -F/S
    assert D(fit["slope"]).quantize(D("1e-20")) == (-future_now / D(44000)).quantize(D("1e-20"))

    rows = list(csv.DictReader(io.StringIO(to_csv(hedge_file))))
    values = {(r["section"], r["key"]): r["value"] for r in rows}
    assert values[("chain", "head_hash")] == head.head_hash
    assert values[("production", "hedged")] == production["hedged"]
    assert values[("trades", "[0].price")] == str(fill.price)
    lines = [json.loads(line) for line in to_jsonl(hedge_file).splitlines()]
    assert [line["record"] for line in lines] == ["hedge_file", "decision", "trade", "effectiveness",
                                                  "production", "chain"]
    assert lines[-1]["head_hash"] == head.head_hash and lines[2]["price"] == str(fill.price)

    path = tmp_path / "hedge.pdf"
    path.write_bytes(hedge_file_pdf(hedge_file))
    reader = PdfReader(path)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert reader.metadata is not None and reader.metadata.title == f"Hedge file p {PERIOD}"
    assert f"audit chain head {head.head_hash}" in text
    for figure in (production["hedged"], production["forecast"], str(fill.price), key, offset["ratio"],
                   fit["slope"], fit["r_squared"], offset["item_change"]):
        assert figure in text, figure


def test_cli_report_refuses_a_pdf_to_stdout_and_an_unknown_program(
        capsys: pytest.CaptureFixture[str]) -> None:
    from rfq_engine.cli.main import main

    config = Path(__file__).parent.parent.parent / "rfq.example.toml"
    assert main(["hedge", "report", "--config", str(config), "--program", "nope", "--period", "2026-12",
                 "--format", "csv"]) == 1
    assert "unknown program 'nope'" in capsys.readouterr().err
    assert main(["hedge", "report", "--config", str(config), "--program", "monthly-future",
                 "--period", "2026-12", "--format", "pdf"]) == 1
    assert "--output" in capsys.readouterr().err
