"""The ``mqtt`` kind of the contract suite: reference bots on a private Mosquitto behind ``MqttDealers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId
from tests.contract.kit import DEALERS, PRIMARY, WAIT_S, Kit, Session, simulated_knobs


class MqttKit(Kit):
    """Two reference bots on a private Mosquitto, each with a ledger (restarts keep it)."""

    kind = "mqtt"
    QUERY_TIMEOUT_MS = 150

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.world: Any = None
        self.bots: dict[DealerId, Any] = {}

    async def _setup(self) -> None:
        from tests.mqtt.kit import World

        self.world = World(self.tmp / "world", DEALERS)
        await self.world.broker.start()
        for dealer in DEALERS:
            quoting: dict[str, Any] = {
                "spread_bps": "10" if dealer == PRIMARY else "30", "quote_validity_ms": 5000,
                "ledger_path": str(self.tmp / f"{dealer}.ledger.jsonl"),
            }
            # SLOW: still booking when the engine's first query times out
            slow_ms = self.config.confirm_timeout_ms + self.QUERY_TIMEOUT_MS + 200
            quoting.update(simulated_knobs(self.act(dealer), float(slow_ms)))
            self.bots[dealer] = await self.world.bot(dealer, **quoting)

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.mqtt.adapter import MqttDealers
        from dealer_adapters.mqtt.config import MqttDealerConfig

        world = self.world
        adapter: DealerAdapter = MqttDealers(
            world.broker_config(query_timeout_ms=self.QUERY_TIMEOUT_MS),
            {d: MqttDealerConfig(secret_env=world.desks[d].secret_env) for d in DEALERS},
            environ=world.environ())
        return adapter

    async def _started(self, session: Session) -> None:
        await session.adapter.wait_online(DEALERS, timeout=WAIT_S)  # type: ignore[attr-defined]
        assert all(session.adapter.lookup_policy(d).can_query for d in DEALERS)  # execution.query

    def executed(self, dealer: DealerId) -> int:
        count: int = self.bots[dealer].executed_count()
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.bots[dealer].queries_unanswered = active

    async def _teardown(self) -> None:
        if self.world is not None:
            await self.world.close()
