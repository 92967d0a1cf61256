"""The ``ccxt`` kind of the contract suite: fake Deribits behind ``CcxtDealers`` (a real ccxt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from dealer_adapters.protocol import DealerAdapter
from rfq_engine.domain import DealerId, RfqSpec
from tests.contract.kit import BACKUP, DEALERS, PRIMARY, Act, Kit, Session


class CcxtKit(Kit):
    """Two Deribit book dealers (``kind = "ccxt"``) against two fake Deribits, each with its
    own journal: BTC_USDC spot, sold into the bids (desk-a's bid 40000, desk-b's 39990)."""

    kind = "ccxt"
    lost_unfilled_is_provable = False
    """The order request left (its intent is journaled) and the venue shows no such label:
    that proves nothing (a lost reply, a look-up lag), so the adapter answers UNKNOWN."""
    SIZE = "0.1"
    SLOW_S = 0.6
    """The venue's late reply in ``slow``/``lost`` mode: past the client's 300 ms timeout."""
    INSTRUMENT: ClassVar[dict[str, str]] = {"kind": "spot", "underlying": "BTC", "quote_ccy": "USDC"}
    CONFIG: ClassVar[dict[str, Any]] = {"timeout_ms": 300, "confirm_margin_ms": 20, "quote_validity_ms": 5000}
    """Each dealer's ``[dealers.ccxt]`` settings besides the venue's URL and the journal."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        self.venues: dict[DealerId, Any] = {}

    def spec(self, dealers: tuple[DealerId, ...] = DEALERS, **overrides: Any) -> RfqSpec:
        data: dict[str, Any] = {
            "legs": [{"instrument": dict(self.INSTRUMENT), "side": "sell", "ratio": "1"}],
            "direction": "sell", "quantity": self.SIZE, "quantity_unit": "BTC", "dealers": list(dealers),
            "requester": "alice", "mandate": "treasury", "window_ms": 2000,
        }
        data.update(overrides)
        return RfqSpec.from_dict(data)

    async def _setup(self) -> None:
        from tests.ccxt_dealers.fake_deribit import FakeDeribit

        for dealer, bid, ask in ((PRIMARY, "40000", "40010"), (BACKUP, "39990", "40020")):
            venue = FakeDeribit(slow_s=self.SLOW_S)
            venue.set_book("BTC_USDC", bids=[(bid, "0.2")], asks=[(ask, "0.2")])
            await venue.start()
            self.venues[dealer] = venue
            act = self.act(dealer)
            if act is Act.DECLINE:  # too thin for the size: the dealer declines
                venue.set_book("BTC_USDC", bids=[(bid, "0.01")], asks=[(ask, "0.01")])
            elif act is Act.REJECT:
                venue.order_mode = "insufficient"
            elif act in (Act.LOSE_FILL, Act.HOLD, Act.SLOW):  # filled at once, answered too late
                venue.order_mode = "slow"
            elif act is Act.LOSE_UNFILLED:  # received, never booked, answered too late
                venue.order_mode = "lost"

    def _adapter(self) -> DealerAdapter:
        from dealer_adapters.ccxt import CcxtDealers
        from tests.ccxt_dealers.conftest import deribit_config

        configs = {d: deribit_config(venue, self.tmp, journal_path=str(self.tmp / f"{d}.journal"),
                                     **self.CONFIG)
                   for d, venue in self.venues.items()}
        adapter: DealerAdapter = CcxtDealers(configs)
        return adapter

    async def _started(self, session: Session) -> None:
        for dealer in DEALERS:
            session.adapter.exchange(dealer).timeout_on_exit = 0  # type: ignore[attr-defined]
        assert all(session.adapter.is_online(d) for d in DEALERS)

    def executed(self, dealer: DealerId) -> int:
        count: int = self.venues[dealer].executed
        return count

    def outage(self, dealer: DealerId, active: bool) -> None:
        self.venues[dealer].fail_lookups_for(3600 if active else 0)

    async def _teardown(self) -> None:
        for venue in self.venues.values():
            await venue.stop()
