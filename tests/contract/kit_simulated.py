"""The ``simulated`` kind of the contract suite: in-process desks (``dealer_adapters.simulated``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId
from tests.contract.kit import DEALERS, PRIMARY, Kit, simulated_knobs
from tests.engine.conftest import snapshot


class SimulatedKit(Kit):
    """In-process desks: the acts are ``SimulatedDealerConfig`` knobs; each desk keeps a
    ledger, so the desks rebuilt after a restart know what was booked before it."""

    kind = "simulated"
    slow_send = True
    outage_from_open = False  # an offline desk is not sent the RFQ: it goes off line at its award

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.adapter: Any = None

    def _desk(self, dealer: DealerId) -> Any:
        from dealer_adapters.simulated import SimulatedDealerConfig

        fields: dict[str, Any] = {
            "latency_ms": 10.0, "latency_jitter_ms": 0.0, "confirm_latency_ms": 5.0,
            "spread_bps": "10" if dealer == PRIMARY else "30", "quote_validity_ms": 5000,
            "seed": 1 if dealer == PRIMARY else 2, "ledger_path": str(self.tmp / f"{dealer}.ledger.jsonl"),
        }
        fields.update(simulated_knobs(self.act(dealer), float(self.config.confirm_timeout_ms + 300)))
        return SimulatedDealerConfig.model_validate(fields)

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.simulated import SimulatedDealers

        market = snapshot()
        self.adapter = SimulatedDealers({d: self._desk(d) for d in DEALERS}, lambda: market)
        adapter: DealerAdapter = self.adapter
        return adapter

    def executed(self, dealer: DealerId) -> int:
        count: int = self.adapter.executed_count(dealer)
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.adapter.set_online(dealer, not active)
