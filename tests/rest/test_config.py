"""``[dealers.rest]``: validation, instrument names, and the ``rest`` kind in the factory."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dealer_adapters.factory import DealerSpec, build_adapters
from dealer_adapters.protocol import DealerAdapter
from dealer_adapters.rest import RestDealerConfig, RestDealers, instrument_key
from dealer_adapters.rest.config import parse_instrument_key
from rfq_engine.domain import Future, HashpriceNdf, Option, OptionType, Perpetual, Spot
from tests.adapters.sim_helpers import snapshot

ROOT = Path(__file__).resolve().parents[2]
PUT = Option("BTC", "USD", date(2027, 2, 5), Decimal("3.5E+4"), OptionType.PUT)
NDF = HashpriceNdf("HASHPRICE", "USD", date(2026, 12, 1), 30)


def make(**overrides: Any) -> RestDealerConfig:
    fields: dict[str, Any] = {
        "base_url": "https://desk.example.com/api/",
        "auth": {"scheme": "bearer", "token_env": "DESK_TOKEN"},
        "state_dir": "/var/lib/rfq/rest",
        "instruments": {"option": "{underlying}-{expiry_day}{expiry:%b%y}-{strike}-{option_type[0]}"},
    }
    fields.update(overrides)
    return RestDealerConfig.model_validate(fields)


def test_names_from_templates_and_overrides() -> None:
    config = make(
        instruments={
            "option": "{underlying}-{expiry_day}{expiry:%b%y}-{strike}-{option_type[0]}",
            "future": "{underlying}_{expiry:%d%b%y}",
            "perpetual": "{underlying}-PERPETUAL",
            "hashprice_ndf": "hp-{start:%Y%m%d}-{days}d",
        },
        instrument_overrides={"future:btc:usd:2026-12-25": "XBTZ26"},
    )
    assert config.base_url == "https://desk.example.com/api"
    assert config.desk_name(PUT) == "BTC-5FEB27-35000-P"  # unpadded day, plain strike, upper case
    assert config.desk_name(Future("BTC", "USD", date(2027, 3, 5))) == "BTC_05MAR27"
    assert config.desk_name(Future("BTC", "USD", date(2026, 12, 25))) == "XBTZ26"  # override, as written
    assert config.desk_name(Perpetual("BTC", "USD")) == "BTC-PERPETUAL"
    assert config.desk_name(NDF) == "HP-20261201-30D"
    assert config.desk_name(Spot("BTC", "USD")) is None  # not quoted
    lower = make(upper_case=False, instruments={"perpetual": "{underlying}-perp"})
    assert lower.desk_name(Perpetual("BTC", "USD")) == "BTC-perp"


def test_instrument_keys_round_trip() -> None:
    for instrument in (PUT, NDF, Spot("BTC", "USD"), Future("BTC", "USD", date(2027, 3, 26))):
        assert parse_instrument_key(instrument_key(instrument)) == instrument
    assert instrument_key(PUT) == "option:BTC:USD:2027-02-05:35000:put"


@pytest.mark.parametrize(("change", "message"), [
    ({"instruments": {"option": "{strik}"}}, "option: unknown field 'strik'"),
    ({"instruments": {"future": "{strike}"}}, "unknown field 'strike'; future templates may use"),
    ({"instruments": {"option": "{underlying.__class__}"}}, "attribute access is not allowed"),
    ({"instruments": {"option": "{}-{0}"}}, "placeholders must be named"),
    ({"instruments": {"option": "{strike:d}"}}, "cannot format a sample option"),
    ({"instruments": {"option": "{underlying"}}, "not a valid template"),
    ({"instruments": {"swap": "x"}}, "instruments.swap"),
    ({"instruments": {}}, "name at least one kind's template"),
    ({"instrument_overrides": {"option:BTC:USD:2027-02-26": "X"}}, "option keys are kind:underlying"),
    ({"instrument_overrides": {"bond:X:Y": "X"}}, "unknown instrument kind 'bond'"),
    ({"instrument_overrides": {"future:BTC:USD:26feb": "X"}}, "expiry: not a date"),
    ({"base_url": "ftp://desk"}, "must be an http(s) URL"),
    ({"base_url": "https://desk/api?x=1"}, "must not have a query"),
    ({"auth": {"scheme": "basic", "token_env": "T"}}, "does not match any of the expected tags"),
    ({"auth": {"scheme": "hmac", "key_env": "K"}}, "auth.hmac.secret_env"),
    ({"auth": {"scheme": "bearer", "token": "s3cret"}}, "auth.bearer.token"),
    ({"auth": {"scheme": "bearer", "token_env": "NOT A NAME"}}, "auth.bearer.token_env"),
    ({"read_timeout_ms": 1500.5}, "read_timeout_ms"),
    ({"read_timeout_ms": 0}, "read_timeout_ms"),
    ({"two_way": "both"}, "two_way"),
    ({"clock_skew_ms": -1}, "clock_skew_ms"),
    ({"clock_skew_ms": 700_000}, "clock_skew_ms"),
    ({"clock_skew_ms": 1.5}, "clock_skew_ms"),
    ({"client_order_id_prefix": "a/b"}, "client_order_id_prefix"),
    ({"colour": "red"}, "colour"),
])
def test_bad_settings_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make(**change)


def test_the_clock_skew_allowance_defaults_to_the_replay_window() -> None:
    assert make().clock_skew_ms == 30_000 and make(clock_skew_ms=0).clock_skew_ms == 0


def test_state_dir_is_required() -> None:
    fields = {"base_url": "https://d", "auth": {"scheme": "bearer", "token_env": "T"},
              "instruments": {"perpetual": "{underlying}"}}
    with pytest.raises(ValidationError, match="state_dir"):
        RestDealerConfig.model_validate(fields)


TOML = """
[[dealers]]
id = "desk-r"
kind = "rest"
[dealers.rest]
base_url = "https://desk.example.com/api"
auth = { scheme = "hmac", key_env = "DESK_R_KEY", secret_env = "DESK_R_SECRET" }
state_dir = "STATE"
connect_timeout_ms = 1000
read_timeout_ms = 2000
two_way = "per_side"
[dealers.rest.instruments]
option = "{underlying}-{expiry_day}{expiry:%b%y}-{strike}-{option_type[0]}"
future = "{underlying}-{expiry_day}{expiry:%b%y}"
[dealers.rest.instrument_overrides]
"future:BTC:USD:2026-12-25" = "XBTZ26"

[[dealers]]
id = "desk-s"
kind = "rest"
[dealers.rest]
base_url = "https://other.example.com"
auth = { scheme = "bearer", token_env = "DESK_S_TOKEN" }
state_dir = "STATE"
instruments = { perpetual = "{underlying}-PERP" }
"""


def specs(text: str) -> list[DealerSpec]:
    return [DealerSpec.model_validate(entry) for entry in tomllib.loads(text)["dealers"]]


def test_the_factory_builds_one_adapter_for_every_rest_desk(tmp_path: Path) -> None:
    entries = specs(TOML.replace("STATE", str(tmp_path)))
    assert isinstance(entries[0].settings(), RestDealerConfig)
    [adapter] = build_adapters(entries, market=snapshot)
    assert isinstance(adapter, RestDealers) and isinstance(adapter, DealerAdapter)
    assert adapter.dealer_ids == ("desk-r", "desk-s")


def test_a_bad_rest_table_is_an_error_naming_the_dealer_and_field() -> None:
    entry = {"id": "desk-r", "kind": "rest",
             "rest": {"base_url": "https://d", "auth": {"scheme": "bearer", "token_env": "T"},
                      "state_dir": "/tmp/x", "instruments": {"future": "{strike}"}}}
    with pytest.raises(ValidationError, match=r"dealer 'desk-r': \[dealers.rest\].instruments: .*'strike'"):
        DealerSpec.model_validate(entry)
    with pytest.raises(ValidationError, match=r"has a \[dealers.rest\] table but its kind is 'simulated'"):
        DealerSpec.model_validate({"id": "d", "kind": "simulated", "rest": {}})


def test_validating_a_rest_config_does_not_import_aiohttp() -> None:
    code = (
        "import sys\n"
        "from dealer_adapters.factory import DealerSpec\n"
        "DealerSpec.model_validate({'id': 'd', 'kind': 'rest', 'rest': {'base_url': 'https://d',"
        " 'auth': {'scheme': 'bearer', 'token_env': 'T'}, 'state_dir': '/tmp/x',"
        " 'instruments': {'perpetual': '{underlying}'}}})\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=60)
