"""``dealer_adapters.factory``: [[dealers]] TOML entries to adapters, lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from dealer_adapters.factory import DealerSpec, build_adapters
from dealer_adapters.protocol import DealerAdapter
from dealer_adapters.simulated import SimulatedDealerConfig, SimulatedDealers
from rfq_engine.domain import Quote
from tests.adapters.sim_helpers import Inbox, rfq, snapshot

ROOT = Path(__file__).resolve().parents[2]

TOML = """
[[dealers]]
id = "desk-a"
kind = "simulated"
[dealers.simulated]
spread_bps = "20"
latency_ms = 1
latency_jitter_ms = 0
seed = 1

[[dealers]]
id = "desk-b"
kind = "simulated"
"""


def specs(text: str) -> list[DealerSpec]:
    return [DealerSpec.model_validate(entry) for entry in tomllib.loads(text)["dealers"]]


async def test_all_simulated_dealers_share_one_adapter():
    adapters = build_adapters(specs(TOML), market=snapshot)
    assert len(adapters) == 1
    [adapter] = adapters
    assert isinstance(adapter, SimulatedDealers) and isinstance(adapter, DealerAdapter)
    assert adapter.dealer_ids == ("desk-a", "desk-b")
    inbox = Inbox()
    await adapter.start(inbox.sink)
    try:
        await adapter.send_rfq("desk-a", rfq())  # type: ignore[arg-type]
        assert (await inbox.get(Quote)).dealer_id == "desk-a"
    finally:
        await adapter.close()


def test_settings_are_validated_at_load_naming_the_dealer():
    bad = TOML.replace('spread_bps = "20"', "spread_bps = 20.5")
    expected = r"dealer 'desk-a': \[dealers.simulated\].spread_bps: .*float"
    with pytest.raises(ValidationError, match=expected):
        specs(bad)
    spec = specs(TOML)[1]
    assert isinstance(spec.settings(), SimulatedDealerConfig)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"id": "desk-x", "kind": "telepathy"}, "desk-x.*unknown kind 'telepathy'"),
        ({"id": "a/b", "kind": "simulated"}, "dealer id"),
        ({"id": "desk-y", "kind": "simulated", "color": "red"}, "color"),
    ],
)
def test_bad_entries_are_clear_errors(entry, message):
    with pytest.raises(ValidationError, match=message):
        DealerSpec.model_validate(entry)


def test_duplicate_dealer_ids_are_refused():
    twice = TOML.replace('id = "desk-b"', 'id = "desk-a"')
    with pytest.raises(ValueError, match=r"desk-a.*twice"):
        build_adapters(specs(twice), market=snapshot)


def test_no_dealers_no_adapters():
    assert build_adapters([], market=snapshot) == []


def test_importing_the_factory_imports_no_adapter():
    code = (
        "import sys, dealer_adapters.factory\n"
        "loaded = [m for m in sys.modules if m.startswith('dealer_adapters.simulated')]\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=env, timeout=60)
