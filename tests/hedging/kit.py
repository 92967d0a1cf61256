"""Shared helpers for the hedging tests: configs, a market, programs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import utc_now
from rfq_engine.hedging.program import ProgramConfig, last_weekday

DESKS = ("desk-a", "desk-b", "desk-c")
DIFFICULTY = "100000000000000"
FORECAST = {"hashrate": "1 EH/s", "difficulty": DIFFICULTY}
"""0.628642737865447998046875 BTC a day: 19.488 BTC in a 31-day month."""


def snapshot(as_of: datetime | None = None) -> MarketSnapshot:
    return MarketSnapshot(spot={"BTC": Decimal(40000)}, vol={"BTC": Decimal("0.5")},
                          rate=Decimal("0.05"), basis={"BTC": Decimal("0.06")},
                          hashprice=Decimal(55), as_of=as_of or utc_now())


def program(**overrides: Any) -> ProgramConfig:
    data: dict[str, Any] = {
        "strategy": "future", "mandate": "treasury", "dealers": list(DESKS), "hedge_ratio": "0.5",
        "schedule": "0 14 * * 5L", "timezone": "UTC", "window_ms": 300, "forecast": dict(FORECAST),
    }
    data.update(overrides)
    return ProgramConfig.model_validate(data)


def this_months_slot(now: date | None = None) -> datetime:
    """The last Friday 14:00 UTC of the current (real) month: the hedged period (next month)
    and its contract (the month after) are then always in the future."""
    today = now or utc_now().date()
    day = last_weekday(today.year, today.month, 4)
    return datetime(day.year, day.month, day.day, 14, tzinfo=UTC)


def after(slot: datetime, seconds: float = 5) -> datetime:
    return slot + timedelta(seconds=seconds)


@asynccontextmanager
async def serve_api(data: dict[str, Any]) -> AsyncIterator[Any]:
    """``rfq serve``'s web app over a config's data, as ``tests.api.conftest.Api``."""
    from aiohttp.test_utils import TestClient, TestServer

    from rfq_engine.api.app import create_web_app
    from rfq_engine.config import parse_config
    from rfq_engine.wiring import open_app
    from tests.api.conftest import Api

    config = parse_config(data)
    app = await open_app(config)
    client = TestClient(TestServer(create_web_app(app, config.api)))
    await client.start_server()
    try:
        yield Api(app, client)
    finally:
        await client.close()
        await app.close()
