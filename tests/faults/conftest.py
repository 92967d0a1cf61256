"""Fixtures of the store-fault tests: a PostgreSQL database per test, an engine on it."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rfq_engine.domain import Award, RfqNew
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import EventFilter, SqlAuditStore
from rfq_engine.store.outage import RetryPolicy
from tests.engine.conftest import future_rfq, mandate_config, snapshot
from tests.engine.scripted import ScriptedDealers
from tests.faults.pgkit import PgDatabase, fresh_database


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``slowfsync.c`` built with the system's cc: a disk whose fsyncs a test slows down
    (LD_PRELOAD; see the C file for its environment)."""
    built = tmp_path_factory.mktemp("slowfsync") / "slowfsync.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", str(built),
                    str(Path(__file__).with_name("slowfsync.c")), "-ldl"],
                   check=True, capture_output=True, text=True)
    yield built


@pytest.fixture(autouse=True)
def _no_checkpoint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RFQ_AUDIT_CHECKPOINT_KEY", raising=False)


@pytest.fixture
async def pg_db() -> AsyncIterator[PgDatabase]:
    if os.environ.get("RFQ_TEST_SKIP_PG") == "1":
        pytest.skip("RFQ_TEST_SKIP_PG=1")
    async with fresh_database() as db:
        yield db


@dataclass
class EngineOnStore:
    engine: RfqEngine
    dealers: ScriptedDealers
    store: SqlAuditStore

    async def types(self, rfq_id: str) -> list[str]:
        return [e.type for e in await self.store.events(EventFilter(rfq_id=rfq_id))]

    async def to_last_look(self) -> tuple[str, Award]:
        """An RFQ to d1 alone, quoted: returns it and its award, sent, not yet confirmed."""
        rfq_id = await self.engine.submit(future_rfq(dealers=["d1"], window_ms=5000))
        await self.dealers.next(RfqNew)
        self.dealers.quote(rfq_id, "d1", bid="40000")
        award = (await self.dealers.next(Award)).message
        assert isinstance(award, Award)
        return rfq_id, award


MakeEngine = Callable[..., Any]


async def until(check: Callable[[], bool], timeout: float = 10) -> None:
    """Poll ``check`` every 50 ms until it holds; AssertionError after ``timeout``."""
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s")


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[MakeEngine]:
    """``await make_engine(url, **store_kw)``: an engine with scripted dealers d1..d4 on a
    SQL store at ``url`` (checkpoint in tmp_path), started (recovery included); stopped and
    closed afterwards."""
    made: list[EngineOnStore] = []

    async def make(url: str, *, config: EngineConfig | None = None,
                   lookups: dict[str, Any] | None = None, **store_kw: Any) -> EngineOnStore:
        store_kw.setdefault("checkpoint_path", tmp_path / "audit.head")
        store_kw.setdefault("retry", RetryPolicy(max_delay_s=0.2, close_grace_s=2))
        store = SqlAuditStore(url, **store_kw)
        await store.open()
        dealers = ScriptedDealers(("d1", "d2", "d3", "d4"))
        dealers.lookups.update(lookups or {})  # what the dealers answer recovery's questions
        engine = RfqEngine(
            store=store, adapters=[dealers],
            mandates={"treasury": Mandate("treasury", mandate_config())},
            reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
            config=config or EngineConfig(confirm_timeout_ms=3000),
        )
        await engine.start()
        made.append(EngineOnStore(engine, dealers, store))
        return made[-1]

    yield make
    for h in made:
        try:
            await h.engine.stop()
        finally:
            await h.store.close()
