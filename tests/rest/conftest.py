"""Fixtures for the REST desk tests: fake desks on free ports, adapters, engines.

Everything runs for real over TCP on 127.0.0.1: the fake desk (``fake_desk.py``) is an
aiohttp server, the adapter its aiohttp client. Nothing is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.rest import RestDealerConfig, RestDealers
from rfq_engine.domain import DealerId
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import AuditStore, open_store
from tests.engine.conftest import mandate_config, snapshot
from tests.rest.fake_desk import KEY, SECRET, TOKEN, FakeDesk

ENV = {"DESK_TOKEN": TOKEN, "DESK_KEY": KEY, "DESK_SECRET": SECRET}
TEMPLATES = {
    "future": "{underlying}-{expiry_day}{expiry:%b%y}",
    "option": "{underlying}-{expiry_day}{expiry:%b%y}-{strike}-{option_type[0]}",
    "perpetual": "{underlying}-PERPETUAL",
}


def desk_config(desk: FakeDesk, state_dir: Path, **overrides: Any) -> RestDealerConfig:
    """A config for ``desk`` with tolerant timeouts (the machine is shared)."""
    auth = ({"scheme": "bearer", "token_env": "DESK_TOKEN"} if desk.auth == "bearer"
            else {"scheme": "hmac", "key_env": "DESK_KEY", "secret_env": "DESK_SECRET"})
    fields: dict[str, Any] = {
        "base_url": desk.base_url, "auth": auth, "state_dir": str(state_dir),
        "connect_timeout_ms": 2000, "read_timeout_ms": 2000, "reconcile_interval_ms": 50,
        "reconcile_grace_ms": 1000, "instruments": TEMPLATES,
    }
    fields.update(overrides)
    return RestDealerConfig.model_validate(fields)


MakeDesk = Callable[..., Any]


@pytest.fixture
async def make_desk() -> AsyncIterator[MakeDesk]:
    """``await make_desk(auth="hmac")`` -> a started ``FakeDesk``, stopped after the test."""
    started: list[FakeDesk] = []

    async def make(**kwargs: Any) -> FakeDesk:
        desk = FakeDesk(**kwargs)
        await desk.start()
        started.append(desk)
        return desk

    yield make
    for desk in started:
        await desk.stop()


@pytest.fixture
async def make_adapter() -> AsyncIterator[Callable[..., RestDealers]]:
    """``make_adapter({"a": config})`` -> a ``RestDealers`` (not started), closed after the test."""
    made: list[RestDealers] = []

    def make(configs: dict[str, RestDealerConfig], environ: dict[str, str] | None = None) -> RestDealers:
        adapter = RestDealers({DealerId(d): c for d, c in configs.items()},
                              environ=ENV if environ is None else environ)
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


MakeEngine = Callable[..., Any]


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[MakeEngine]:
    """``await make_engine(adapter, store="memory"|"sqlite")`` -> a started ``RfqEngine`` and store;
    stopped (and the audit chain verified) after the test."""
    made: list[tuple[RfqEngine, AuditStore]] = []

    async def make(adapter: RestDealers, *, store: str = "memory", confirm_timeout_ms: int = 3000,
                   **mandate: Any) -> tuple[RfqEngine, AuditStore]:
        url = "memory://" if store == "memory" else f"sqlite+aiosqlite:///{tmp_path}/audit.db"
        audit = open_store(url)
        await audit.open()
        limits = {d: {"credit_limit": "1000000000"} for d in adapter.dealer_ids}
        engine = RfqEngine(
            store=audit, adapters=[adapter],
            mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits, **mandate))},
            reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
            config=EngineConfig(confirm_timeout_ms=confirm_timeout_ms, send_timeout_ms=2000))
        await engine.start()
        made.append((engine, audit))
        return engine, audit

    yield make
    for engine, audit in made:
        await engine.stop()
        report = await audit.verify()
        assert report.ok, report.problem
        await audit.close()
