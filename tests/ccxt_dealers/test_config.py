"""``[dealers.ccxt]`` and ``[reference]`` validate strictly, name the field, and never import ccxt."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dealer_adapters.ccxt import CcxtDealerConfig, CcxtDealers
from dealer_adapters.factory import DealerSpec, build_adapters
from rfq_engine.config import parse_config
from tests.engine.conftest import snapshot


def spec(**ccxt: Any) -> DealerSpec:
    table = {"exchange": "okx", "journal_path": "var/okx.journal", **ccxt}
    return DealerSpec.model_validate({"id": "okx-book", "kind": "ccxt", "ccxt": table})


def test_a_ccxt_dealer_entry_validates_and_builds_one_adapter() -> None:
    settings = spec(api_key_env="OKX_KEY", taker_fee="0.0005").settings()
    assert isinstance(settings, CcxtDealerConfig) and settings.quote_validity_ms == 2000
    assert settings.order_id_max_len == 32
    [adapter] = build_adapters([spec(), DealerSpec.model_validate(
        {"id": "okx-conv", "kind": "ccxt", "ccxt": {"exchange": "okx", "mode": "convert",
                                                    "journal_path": "var/okx.journal"}})],
        market=snapshot)
    assert isinstance(adapter, CcxtDealers) and adapter.dealer_ids == ("okx-book", "okx-conv")


@pytest.mark.parametrize(("table", "message"), [
    ({"taker_fee": 0.0005}, r"\[dealers.ccxt\].taker_fee: .*not a float"),
    ({"api_key_env": "my key"}, r"api_key_env: .*environment variable"),
    ({"requote_interval_ms": 3000}, "requote_interval_ms: must be shorter than quote_validity_ms"),
    ({"mode": "okx_rfq"}, "rfq_counterparties: OKX block RFQ needs at least one maker"),
    ({"exchange": "binance", "mode": "okx_rfq", "rfq_counterparties": ["A"]}, "needs exchange = 'okx'"),
    ({"exchange": "OKX!"}, "must be a ccxt exchange id"),
    ({"api_secret": "plain"}, "api_secret"),
])
def test_bad_tables_are_clear_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**table)


def test_reference_section_in_the_app_config() -> None:
    config = parse_config({
        "market": {"spot": {"BTC": "40000"}, "rate": "0.05"},
        "mandates": {"treasury": {"underlyings": ["BTC"], "instruments": ["perpetual"], "max_tenor_days": 1,
                                  "dealers": {"okx-book": {"credit_limit": "1000000"}}}},
        "dealers": [{"id": "okx-book", "kind": "ccxt",
                     "ccxt": {"exchange": "okx", "journal_path": "j.jsonl"}}],
        "reference": {"exchange": "okx", "price": "mark", "max_age_s": 2, "spot": {"btc": "usdt"}},
    })
    assert config.reference is not None and config.reference.spot == {"BTC": "USDT"}


PROBE = """
import json, sys
from dealer_adapters.factory import DealerSpec, build_adapters
table = {"exchange": "okx", "journal_path": "j"}
spec = DealerSpec.model_validate({"id": "x", "kind": "ccxt", "ccxt": table})
build_adapters([spec], market=lambda: None)
import rfq_engine.pricing.ccxt_reference, rfq_engine.config
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "ccxt")))
"""


@pytest.mark.slow
def test_validating_and_building_do_not_import_ccxt(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False, env={"PYTHONPATH": str(Path.cwd())})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
