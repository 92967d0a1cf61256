"""``rfq request``: exit 0 filled, 2 not filled, 1 for a malformed config or RFQ file, which
then writes nothing (no database, checkpoint or lock file)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.cli.main import main
from tests.cli.clikit import config_text, rfq, rfq_body, store_files, write, write_rfq

pytestmark = pytest.mark.slow


def setup(tmp_path: Path, *, decline_rate: float = 0.0, **body: Any) -> tuple[Path, Path]:
    config = write(tmp_path / "rfq.toml", config_text(str(tmp_path / "rfq.db"), decline_rate=decline_rate))
    return config, write_rfq(tmp_path / "rfq.json", rfq_body(**body))


def test_filled_exits_0_with_the_decision_record(tmp_path: Path) -> None:
    config, request = setup(tmp_path)
    done = rfq(["request", "--config", str(config), "--rfq", str(request)], tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert re.search(r"^RFQ \S+\s+—\s+FILLED", out, re.MULTILINE), out
    assert "award #1 -> desk-a bid" in out
    assert "-> confirmed" in out
    assert re.search(r"^\s+fill desk-a 10 @ ", out, re.MULTILINE), out
    assert "[PASS] min_quotes" in out
    assert "FILL" in done.stderr  # the live view goes to stderr, the record to stdout
    assert (tmp_path / "rfq.db").exists()


def test_json_output_parses_and_names_the_winner(tmp_path: Path) -> None:
    config, request = setup(tmp_path)
    done = rfq(["request", "--config", str(config), "--rfq", str(request), "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["state"] == "filled"
    confirmed = [a for a in record["awards"] if a["outcome"] == "confirmed"]
    assert [a["dealer_id"] for a in confirmed] == ["desk-a"]  # the tightest desk wins
    assert [f["dealer_id"] for f in record["fills"]] == ["desk-a"]
    assert record["ranking"][0]["dealer_id"] == "desk-a"
    assert {q["dealer_id"] for q in record["quotes"]} == {"desk-a", "desk-b", "desk-c"}
    assert isinstance(record["filled_quantity"], str) and Decimal(record["filled_quantity"]) == 10
    assert isinstance(record["fills"][0]["price"], str)


def test_not_filled_exits_2(tmp_path: Path) -> None:
    config, request = setup(tmp_path, decline_rate=1.0)
    done = rfq(["request", "--config", str(config), "--rfq", str(request)], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(r"^RFQ \S+\s+—\s+NOT_FILLED", done.stdout, re.MULTILINE), done.stdout
    assert "declined" in done.stdout
    assert "[FAIL] min_quotes: 0 valid quotes" in done.stdout


# --- malformed input: exit 1, the field named, nothing written ----------------------------


def _bad_config(tmp_path: Path, case: str) -> str:
    good = config_text(str(tmp_path / "rfq.db"))
    if case == "float price":
        return good.replace('spot = { BTC = "40000" }', "spot = { BTC = 40000.5 }")
    if case == "unknown key":
        return good.replace("confirm_timeout_ms = 1000", "confirm_timeout_ms = 1000\nconfirm_timout_ms = 5")
    if case == "missing section":
        return config_text(str(tmp_path / "rfq.db"), market="")
    raise AssertionError(case)


CONFIG_CASES = {
    "float price": "market.spot.BTC",
    "unknown key": "engine.confirm_timout_ms",
    "missing section": "market",
}


def _body(case: str) -> str:
    if case == "bad JSON":
        return json.dumps(rfq_body())[:-10]
    body = rfq_body()
    if case == "float quantity":
        body["quantity"] = 10.5
    elif case == "missing leg field":
        del body["legs"][0]["side"]
    elif case == "unknown dealer":
        body["dealers"] = ["desk-a", "desk-z"]
    elif case == "unknown mandate":
        body["mandate"] = "tresury"
    else:
        raise AssertionError(case)
    return json.dumps(body)


RFQ_CASES = {
    "bad JSON": "not valid JSON",
    "float quantity": "quantity: must be a decimal string",
    "missing leg field": "legs[0].side: is required",
    "unknown dealer": "dealers: unknown dealer(s) desk-z",
    "unknown mandate": "mandate: unknown mandate 'tresury'",
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_malformed_config_exits_1_naming_the_field_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "rfq.toml", _bad_config(tmp_path, case))
    request = write_rfq(tmp_path / "rfq.json", rfq_body())
    monkeypatch.chdir(tmp_path)
    assert main(["request", "--config", str(config), "--rfq", str(request)]) == 1
    err = capsys.readouterr().err
    assert f"rfq.toml: {CONFIG_CASES[case]}:" in err, err
    assert store_files(tmp_path) == []


@pytest.mark.parametrize("case", list(RFQ_CASES))
def test_malformed_rfq_file_exits_1_naming_the_field_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "rfq.toml", config_text(str(tmp_path / "rfq.db")))
    request = write(tmp_path / "rfq.json", _body(case))
    monkeypatch.chdir(tmp_path)
    assert main(["request", "--config", str(config), "--rfq", str(request)]) == 1
    err = capsys.readouterr().err
    assert "rfq.json" in err and RFQ_CASES[case] in err, err
    assert store_files(tmp_path) == []


def test_error_exit_code_through_a_real_process(tmp_path: Path) -> None:
    config = write(tmp_path / "rfq.toml", _bad_config(tmp_path, "float price"))
    request = write_rfq(tmp_path / "rfq.json", rfq_body())
    done = rfq(["request", "--config", str(config), "--rfq", str(request)], tmp_path)
    assert done.returncode == 1
    assert "market.spot.BTC" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert store_files(tmp_path) == []
