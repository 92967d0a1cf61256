"""One RFQ to a QuickFIX desk and an MQTT desk together: both quote, FIX wins, fills over FIX."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from dealer_adapters.fix import FixDealers
from dealer_adapters.mqtt.adapter import MqttDealers
from dealer_adapters.mqtt.config import MqttDealerConfig
from rfq_engine.domain import DealerId, RfqState
from rfq_engine.domain.events import EventType
from rfq_engine.engine import RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store import EventFilter
from rfq_engine.store.memory import InMemoryAuditStore
from tests.contract.kit import WAIT_S, engine_config
from tests.engine.conftest import future_rfq, mandate_config, snapshot
from tests.fix.conftest import DeskFactory, fix_config
from tests.mqtt.conftest import require_mosquitto
from tests.mqtt.kit import World

FIX_DESK = DealerId("fix-desk")
MQTT_DESK = DealerId("mqtt-desk")


async def test_rfq_reaches_a_quickfix_desk_and_an_mqtt_desk_and_fills_over_fix(
        quickfix_desks: DeskFactory, tmp_path: Path) -> None:
    require_mosquitto()
    desk = await quickfix_desks("fix-desk", sender="FIXDESK", bid="40180")  # above the bot's (about 40132)
    world = World(tmp_path / "world", (MQTT_DESK,))
    store = InMemoryAuditStore()
    await store.open()
    engine: RfqEngine | None = None
    try:
        await world.broker.start()
        bot = await world.bot(MQTT_DESK, spread_bps="30", quote_validity_ms=5000)
        fix = FixDealers({FIX_DESK: fix_config(desk, tmp_path / "fix-state")})
        mqtt = MqttDealers(world.broker_config(), {MQTT_DESK: MqttDealerConfig(
            secret_env=world.desks[MQTT_DESK].secret_env)}, environ=world.environ())
        limits = {d: {"credit_limit": "1000000000"} for d in (FIX_DESK, MQTT_DESK)}
        engine = RfqEngine(store=store, adapters=[fix, mqtt],
                           mandates={"treasury": Mandate("treasury", mandate_config(dealers=limits))},
                           reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
                           config=engine_config())
        await engine.start()
        await fix.wait_online([FIX_DESK], WAIT_S)
        await mqtt.wait_online([MQTT_DESK], timeout=WAIT_S)
        rfq_id = await engine.submit(future_rfq(dealers=[FIX_DESK, MQTT_DESK]))
        assert await engine.wait(rfq_id, WAIT_S) is RfqState.FILLED
        events = await store.events(EventFilter(rfq_id=rfq_id))
        quoted = {e.payload["dealer_id"] for e in events if e.type == EventType.QUOTE_RECEIVED}
        assert quoted == {FIX_DESK, MQTT_DESK}
        [fill] = await store.fills(rfq_id)
        assert fill.dealer_id == FIX_DESK and desk.executed_count == 1 and bot.executed_count() == 0
        assert len(desk.inbound("AJ")) == 1 and desk.outbound("3") == []
    finally:
        if engine is not None:
            await engine.stop()
        await store.close()
        await world.close()
