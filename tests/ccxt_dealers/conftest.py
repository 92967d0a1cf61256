"""Fixtures: a fake OKX and a fake Deribit on free local ports, and exchange dealers
pointed at them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.ccxt import CcxtDealerConfig, CcxtDealers
from rfq_engine.domain import (
    Award,
    DealerId,
    DealerStatus,
    Direction,
    ExecutionId,
    Inbound,
    Leg,
    QuoteSide,
    RfqId,
    RfqNew,
    new_id,
    utc_now,
)
from tests.ccxt_dealers.fake_deribit import API_KEY as DERIBIT_KEY
from tests.ccxt_dealers.fake_deribit import SECRET as DERIBIT_SECRET
from tests.ccxt_dealers.fake_deribit import FakeDeribit
from tests.ccxt_dealers.fake_okx import API_KEY, FakeOkx

FUTURE_EXPIRY = date.today() + timedelta(days=40)
OPTION_EXPIRY = date.today() + timedelta(days=30)
ENV = {"T_OKX_KEY": API_KEY, "T_OKX_SECRET": "secret", "T_OKX_PASS": "pass"}
DERIBIT_ENV = {"T_DERIBIT_KEY": DERIBIT_KEY, "T_DERIBIT_SECRET": DERIBIT_SECRET}


class Inbox:
    """Everything the adapter hands the engine, awaitable by type (no sleeps)."""

    def __init__(self) -> None:
        self.messages: list[Inbound] = []
        self._changed = asyncio.Event()

    def __call__(self, message: Inbound) -> None:
        self.messages.append(message)
        self._changed.set()

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]

    async def next(self, kind: type, *, count: int = 1, timeout: float = 10.0) -> Any:
        """The ``count``-th message of ``kind`` (waiting for it)."""
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[count - 1]


def swap_leg(side: str = "sell", ratio: str = "1") -> Leg:
    return Leg.from_dict({"instrument": {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDT"},
                          "side": side, "ratio": ratio}, "leg")


def leg(instrument: dict[str, Any], side: str = "sell", ratio: str = "1") -> Leg:
    return Leg.from_dict({"instrument": instrument, "side": side, "ratio": ratio}, "leg")


def rfq(legs: list[Leg] | None = None, *, quantity: str = "0.1", direction: str = "sell",
        allow_partial: bool = False, window_s: float = 3.0, unit: str = "BTC") -> RfqNew:
    return RfqNew(RfqId(new_id()), tuple(legs or [swap_leg()]), Decimal(quantity), unit,
                  Direction(direction), allow_partial, utc_now() + timedelta(seconds=window_s))


def award_for(quote: Any, side: QuoteSide = QuoteSide.BID, quantity: Decimal | None = None,
              confirm_s: float = 8.0, execution_id: str | None = None) -> Award:
    price = quote.bid if side is QuoteSide.BID else quote.ask
    return Award(quote.rfq_id, quote.quote_id, quote.dealer_id, side, price,
                 quote.quantity if quantity is None else quantity,
                 ExecutionId(execution_id or new_id()), utc_now() + timedelta(seconds=confirm_s))


@pytest.fixture
async def okx(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOkx]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    server = FakeOkx(future_expiry=FUTURE_EXPIRY, option_expiry=OPTION_EXPIRY)
    server.set_book("BTC-USDT-SWAP", bids=[("40000", "5"), ("39990", "10")],
                    asks=[("40010", "5"), ("40020", "10")])
    server.set_book("BTC-USDT", bids=[("39995", "0.5")], asks=[("40005", "0.5")])
    await server.start()
    yield server
    await server.stop()


def config(server: FakeOkx, tmp_path: Path, **overrides: Any) -> CcxtDealerConfig:
    data: dict[str, Any] = {
        "exchange": "okx", "api_key_env": "T_OKX_KEY", "secret_env": "T_OKX_SECRET",
        "password_env": "T_OKX_PASS", "urls": {"rest": server.url}, "enable_rate_limit": False,
        "timeout_ms": 2000, "journal_path": str(tmp_path / "okx.journal"), "taker_fee": "0.0005",
        "reconcile_interval_ms": 50, "reconcile_timeout_ms": 2000,
    }
    data.update(overrides)
    return CcxtDealerConfig.model_validate(data)


@pytest.fixture
async def deribit(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDeribit]:
    """The fake Deribit with a BTC_USDC spot book: bids 0.05 @ 40000, 0.1 @ 39990; asks
    0.05 @ 40010, 0.1 @ 40020 (amounts in BTC); a dated inverse future expiring FUTURE_EXPIRY."""
    for key, value in DERIBIT_ENV.items():
        monkeypatch.setenv(key, value)
    server = FakeDeribit(future_expiry=FUTURE_EXPIRY)
    server.set_book("BTC_USDC", bids=[("40000", "0.05"), ("39990", "0.1")],
                    asks=[("40010", "0.05"), ("40020", "0.1")])
    await server.start()
    yield server
    await server.stop()


def deribit_config(server: FakeDeribit, tmp_path: Path, **overrides: Any) -> CcxtDealerConfig:
    data: dict[str, Any] = {
        "exchange": "deribit", "api_key_env": "T_DERIBIT_KEY", "secret_env": "T_DERIBIT_SECRET",
        "urls": {"rest": server.url}, "enable_rate_limit": False, "timeout_ms": 2000,
        "journal_path": str(tmp_path / "deribit.journal"), "taker_fee": "0.0005",
        "reconcile_interval_ms": 50, "reconcile_timeout_ms": 2000,
    }
    data.update(overrides)
    return CcxtDealerConfig.model_validate(data)


Make = Callable[..., Any]


@pytest.fixture
async def make_dealers(tmp_path: Path) -> AsyncIterator[Make]:
    """``await make_dealers({"okx-book": cfg})`` -> started (CcxtDealers, Inbox), closed after."""
    made: list[CcxtDealers] = []

    async def build(configs: dict[str, CcxtDealerConfig]) -> tuple[CcxtDealers, Inbox]:
        dealers = CcxtDealers({DealerId(k): v for k, v in configs.items()})
        inbox = Inbox()
        made.append(dealers)
        for ex_cfg in configs.values():  # never a real venue from the tests
            assert ex_cfg.exchange in ("okx", "deribit")
            assert ex_cfg.urls is not None and str(ex_cfg.urls["rest"]).startswith("http://127.0.0.1:")
        await dealers.start(inbox)
        for dealer in configs:
            dealers.exchange(DealerId(dealer)).timeout_on_exit = 0  # no 250 ms pause on close in tests
        statuses = inbox.of(DealerStatus)
        assert all(s.online for s in statuses), statuses
        return dealers, inbox

    yield build
    for dealers in made:
        await dealers.close()
