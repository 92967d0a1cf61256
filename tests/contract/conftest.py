"""The contract suite's fixtures: one kit per dealer kind (``kit_<kind>.py``, on the
``Kit`` interface of ``kit.py``) and ``kit``, every kind in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.contract.kit import Kit
from tests.contract.kit_ccxt import CcxtKit
from tests.contract.kit_deribit_block import DeribitBlockCollarKit, DeribitBlockKit
from tests.contract.kit_fix import FixKit
from tests.contract.kit_mqtt import MqttKit
from tests.contract.kit_rest import RestKit
from tests.contract.kit_simulated import SimulatedKit

__all__ = ["KINDS"]


@pytest.fixture
async def simulated_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    kit = SimulatedKit(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def rest_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    kit = RestKit(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def mqtt_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    from tests.mqtt.conftest import require_mosquitto

    require_mosquitto()
    kit = MqttKit(tmp_path)
    yield kit
    await kit.close()


async def _deribit_kit(cls: type[CcxtKit], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                       ) -> AsyncIterator[Kit]:
    from tests.ccxt_dealers.conftest import DERIBIT_ENV

    for key, value in DERIBIT_ENV.items():
        monkeypatch.setenv(key, value)
    kit = cls(tmp_path)
    yield kit
    await kit.close()


@pytest.fixture
async def ccxt_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kit]:
    async for kit in _deribit_kit(CcxtKit, tmp_path, monkeypatch):
        yield kit


@pytest.fixture
async def ccxt_block_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kit]:
    """Deribit Block RFQ dealers (``kit_deribit_block.py``)."""
    async for kit in _deribit_kit(DeribitBlockKit, tmp_path, monkeypatch):
        yield kit


@pytest.fixture
async def ccxt_block_collar_kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Kit]:
    """The same, on a multi-leg package (a USDC options collar as one Block RFQ)."""
    async for kit in _deribit_kit(DeribitBlockCollarKit, tmp_path, monkeypatch):
        yield kit


@pytest.fixture
async def fix_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    from tests.fix.quickfix_desk import require_quickfix

    require_quickfix()
    kit = FixKit(tmp_path)
    yield kit
    await kit.close()


KINDS = ("simulated", "rest", "mqtt", "ccxt", "ccxt-block", "ccxt-block-collar", "fix")


@pytest.fixture(params=KINDS)
def kit(request: pytest.FixtureRequest) -> Iterator[Kit]:
    """Every dealer kind in turn (the contract suite runs each case on each)."""
    made: Kit = request.getfixturevalue(f"{request.param.replace('-', '_')}_kit")
    yield made
