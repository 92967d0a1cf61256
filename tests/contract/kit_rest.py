"""The ``rest`` kind of the contract suite: fake OTC desks over HTTP behind ``RestDealers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId
from tests.contract.kit import BACKUP, PRIMARY, Act, Kit


class RestKit(Kit):
    """Two fake OTC desks over HTTP (``tests/rest/fake_desk.py``). The desk shares our clock,
    so ``clock_skew_ms = 0``: a 404 past the order's ``expires_at`` proves it absent."""

    kind = "rest"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.desks: dict[DealerId, Any] = {}

    async def _setup(self) -> None:
        from tests.rest.fake_desk import FakeDesk

        for dealer, bid in ((PRIMARY, "39999"), (BACKUP, "39990")):
            desk = FakeDesk(bid=bid)
            await desk.start()
            self.desks[dealer] = desk
            act = self.act(dealer)
            if act is Act.DECLINE:
                desk.decline_reason = "no appetite for this size"
            elif act is Act.REJECT:
                desk.order_reject_reason = "last look: price moved"
            elif act in (Act.LOSE_FILL, Act.HOLD):
                desk.lose_order_reply = True
            elif act is Act.LOSE_UNFILLED:
                desk.lose_order_request = True
            elif act is Act.SLOW:  # past the client's read timeout, decided before expires_at
                desk.order_hang_s = self.config.confirm_timeout_ms / 2000

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.rest import RestDealers
        from tests.rest.conftest import ENV, desk_config

        configs = {d: desk_config(desk, self.tmp, read_timeout_ms=150, clock_skew_ms=0,
                                  reconcile_interval_ms=50, reconcile_grace_ms=1000)
                   for d, desk in self.desks.items()}
        adapter: DealerAdapter = RestDealers(configs, environ=ENV)
        return adapter

    def executed(self, dealer: DealerId) -> int:
        count: int = self.desks[dealer].executed_count
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.desks[dealer].fail_gets_for(3600 if active else 0)

    async def _teardown(self) -> None:
        for desk in self.desks.values():
            await desk.stop()
