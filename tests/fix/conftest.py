"""Fixtures of tests/fix: QuickFIX desks (``quickfix_desk.QuickFixDesk``) and our configs for them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.fix.config import FixDealerConfig
from tests.engine.conftest import FUT_EXPIRY
from tests.fix.quickfix_desk import QuickFixDesk, build_desk, require_quickfix

SYMBOL = "BTC-26FEB27"
SYMBOLS = {f"future:BTC:USD:{FUT_EXPIRY}": SYMBOL, "spot:BTC:USD": "BTC/USD"}


def fix_config(desk: QuickFixDesk, state_dir: Path, **overrides: Any) -> FixDealerConfig:
    """Our side of a session with ``desk``: quick timings for tests."""
    fields: dict[str, Any] = {
        "host": "127.0.0.1", "port": desk.port, "sender_comp_id": desk.target, "target_comp_id": desk.sender,
        "state_dir": str(state_dir), "symbols": SYMBOLS, "heartbeat_s": 5, "reconnect_min_ms": 50,
        "reconnect_max_ms": 400, "status_timeout_ms": 500, "clock_skew_ms": 0, "logon_timeout_ms": 5000,
    }
    fields.update(overrides)
    return FixDealerConfig.model_validate(fields)


@pytest.fixture(scope="session")
def desk_binary() -> Path:
    require_quickfix()
    return build_desk()


DeskFactory = Callable[..., Coroutine[Any, Any, QuickFixDesk]]


@pytest.fixture
async def quickfix_desks(desk_binary: Path, tmp_path: Path) -> AsyncIterator[DeskFactory]:
    """``await make(name, **knobs)``: a started QuickFIX desk (stopped after the test)."""
    started: list[QuickFixDesk] = []

    async def make(name: str = "desk", **knobs: Any) -> QuickFixDesk:
        desk = QuickFixDesk(desk_binary, tmp_path / f"qf-{name}", sender=knobs.pop("sender", name.upper()),
                            **knobs)
        await desk.start()
        started.append(desk)
        return desk

    yield make
    for desk in started:
        await desk.stop()
