"""The ``fix`` kind of the contract suite: QuickFIX acceptors behind ``FixDealers``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId
from tests.contract.kit import BACKUP, DEALERS, PRIMARY, WAIT_S, Act, Kit, Session


class FixKit(Kit):
    """Two QuickFIX desks (``tests/fix/quickfix_desk.py``: QuickFIX's acceptor, its own
    session layer and message store) behind ``FixDealers``; restarts keep both sides' state."""

    kind = "fix"

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.desks: dict[DealerId, Any] = {}

    async def _setup(self) -> None:
        from tests.fix.quickfix_desk import QuickFixDesk, build_desk

        for dealer, bid in ((PRIMARY, "39999"), (BACKUP, "39990")):
            desk = QuickFixDesk(build_desk(), self.tmp / f"qf-{dealer}", sender=dealer.upper(), bid=bid)
            await desk.start()
            self.desks[dealer] = desk
            act = self.act(dealer)
            if act is not Act.NORMAL:
                mode = {Act.DECLINE: "decline", Act.REJECT: "reject", Act.LOSE_FILL: "lose_fill",
                        Act.HOLD: "hold", Act.LOSE_UNFILLED: "lose_unfilled", Act.SLOW: "slow"}[act]
                await desk.mode(mode, self.config.confirm_timeout_ms + 300)

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.fix import FixDealers
        from tests.fix.conftest import fix_config

        configs = {d: fix_config(desk, self.tmp / "fix-state") for d, desk in self.desks.items()}
        adapter: DealerAdapter = FixDealers(configs)
        return adapter

    async def _started(self, session: Session) -> None:
        await session.adapter.wait_online(DEALERS, timeout=WAIT_S)  # type: ignore[attr-defined]

    def executed(self, dealer: DealerId) -> int:
        count: int = self.desks[dealer].executed_count
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.desks[dealer].command_nowait(f"outage {int(active)}")

    async def release(self) -> None:
        for dealer, act in self.acts.items():
            if act is Act.HOLD:
                await self.desks[dealer].command("release")
        await super().release()

    async def _teardown(self) -> None:
        for desk in self.desks.values():
            await desk.stop()
