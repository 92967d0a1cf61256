"""An RFQ waiting for a person survives an engine restart: parked on stop, resumed after."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rfq_engine.domain import Award, RfqNew, RfqState
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import EventFilter, open_store
from tests.engine.conftest import DEALERS, Harness, future_rfq, mandate_config, snapshot, wait_state
from tests.engine.scripted import ScriptedDealers


async def start(url: str, dealers: ScriptedDealers) -> RfqEngine:
    store = open_store(url)
    await store.open()
    engine = RfqEngine(store=store, adapters=[dealers],
                       mandates={"treasury": Mandate("treasury", mandate_config())},
                       reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
                       config=EngineConfig(confirm_timeout_ms=1000))
    await engine.start()
    return engine


async def test_pending_approval_is_parked_on_stop_and_resumed_after(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    dealers = ScriptedDealers(DEALERS)
    engine = await start(url, dealers)
    rfq_id = await engine.submit(future_rfq(require_approval=True))  # small, but flagged
    await wait_state(Harness(engine, dealers, engine.store), rfq_id, "pending_approval")  # type: ignore[arg-type]
    await engine.stop()
    row = await engine.store.get_rfq(rfq_id)
    assert row is not None and row.state == "pending_approval"
    parked = await engine.store.events(EventFilter(rfq_id=rfq_id, types=["rfq.parked"]))
    assert "resumes on restart" in parked[0].payload["reason"]
    await engine.store.close()

    dealers = ScriptedDealers(DEALERS)
    engine = await start(url, dealers)
    try:
        live = engine.live(rfq_id)
        assert live is not None and live.state is RfqState.PENDING_APPROVAL
        await engine.approve(rfq_id, approver="bob")
        await dealers.next(RfqNew)
        for dealer in DEALERS:
            dealers.quote(rfq_id, dealer, bid="39900")
        dealers.confirm((await dealers.next(Award)).message)  # type: ignore[arg-type]
        assert await engine.wait(rfq_id, 5) is RfqState.FILLED
        assert (await engine.store.verify()).ok
    finally:
        await engine.stop()
        await engine.store.close()
