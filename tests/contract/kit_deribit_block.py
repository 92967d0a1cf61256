"""The ``ccxt-block`` and ``ccxt-block-collar`` kinds of the contract suite: Deribit Block
RFQ dealers (``mode = "deribit_block_rfq"``, ``dealer_adapters/ccxt/deribit_block.py``)
behind ``CcxtDealers`` (a real ccxt, its signed raw request), each against its own fake
Deribit Block RFQ venue (``tests/ccxt_dealers/fake_deribit_block.py``, written from
Deribit's API documentation), on one leg and on a two-leg package."""

from __future__ import annotations

from typing import Any, ClassVar

from rfq_engine.domain import DealerId, RfqSpec
from tests.contract.kit import BACKUP, DEALERS, PRIMARY, Act
from tests.contract.kit_ccxt import CcxtKit

PERPETUAL = "BTC_USDC-PERPETUAL"
"""Deribit's linear perpetual: amounts in BTC, priced in USDC (a Block RFQ leg, as in Deribit's
``block_rfq.taker`` examples; no options fee, so the makers' price is the quote)."""


class DeribitBlockKit(CcxtKit):
    """Two Deribit Block RFQ dealers, each one venue where two makers (``MAKER1``, ``MAKER2``)
    answer every new Block RFQ: selling 0.1 BTC of ``BTC_USDC-PERPETUAL``, desk-a's makers bid
    40000 and 39995, desk-b's 39990 and 39985. Deribit's 5 s grace period is 0.3 s here, on both
    sides (the fake's ``grace_s``, the dealer's ``rfq_grace_ms``).

    The acts, each a behaviour Deribit documents:
    - ``DECLINE``: no maker quotes; the dealer declines at the deadline and cancels the Block RFQ.
    - ``REJECT``: the accept is refused (``10009 not_enough_funds``): nothing traded.
    - ``LOSE_FILL``/``HOLD``/``SLOW``: the accept trades at once and its answer comes after ccxt's
      timeout (``accept_mode = "slow"``); the dealer looks the Block RFQ up, never re-accepts.
    - ``LOSE_UNFILLED``: the accept is received and never acted on, answered late
      (``accept_mode = "lost"``).
    - the outage: the Block RFQ look-ups (``get_block_rfqs``, ``get_block_trades``) answer
      ``10040 retry``.
    """

    kind = "ccxt-block"
    lost_unfilled_is_provable = True
    """A Block RFQ trades once, for its whole amount: the look-up fences it
    (``private/cancel_block_rfq``), and ``cancelled`` proves the accept cannot have traded."""
    outage_from_open = False
    """The look-ups are also how the dealer reads the makers' quotes: the outage starts at the award."""
    CONFIG: ClassVar[dict[str, Any]] = {
        "mode": "deribit_block_rfq", "rfq_grace_ms": 300, "rfq_poll_interval_ms": 100,
        "rfq_counterparties": ["MAKER1", "MAKER2"], "rfq_anonymous": False,
        "timeout_ms": 600, "confirm_margin_ms": 20,
    }
    """ccxt's ``timeout_ms`` is past the engine's ``confirm_timeout_ms`` (400): a lost accept is
    still in flight when the engine declares the outcome unknown, and only then looked up."""
    SLOW_S = 1.0
    """The venue's late answer to an accept (``slow``/``lost``): past ccxt's timeout."""
    MAKERS = {PRIMARY: ("40000", "39995"), BACKUP: ("39990", "39985")}
    INSTRUMENT: ClassVar[dict[str, str]] = {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDC"}

    def _makers(self, dealer: DealerId) -> list[tuple[str, dict[str, str]]]:
        """Each maker's leg prices for ``dealer``'s venue."""
        return [(maker, {PERPETUAL: price}) for maker, price in zip(("MAKER1", "MAKER2"), self.MAKERS[dealer],
                                                                    strict=True)]

    async def _setup(self) -> None:
        from tests.ccxt_dealers.conftest import OPTION_EXPIRY
        from tests.ccxt_dealers.fake_deribit_block import FakeDeribitBlock, MakerQuote

        for dealer in DEALERS:
            venue = FakeDeribitBlock(slow_s=self.SLOW_S, grace_s=0.3, option_expiry=OPTION_EXPIRY)
            # the adapter lists the legs as the taker buys them (the requester selling): a maker's
            # ask on that structure is its bid for the requester's package
            venue.maker_quotes = [MakerQuote(maker, "ask", legs) for maker, legs in self._makers(dealer)]
            await venue.start()
            self.venues[dealer] = venue
            act = self.act(dealer)
            if act is Act.DECLINE:  # no maker answers the Block RFQ
                venue.maker_quotes = []
            elif act is Act.REJECT:
                venue.accept_mode = "insufficient"
            elif act in (Act.LOSE_FILL, Act.HOLD, Act.SLOW):  # traded at once, answered too late
                venue.accept_mode = "slow"
            elif act is Act.LOSE_UNFILLED:  # received, never acted on, answered too late
                venue.accept_mode = "lost"

    def executed(self, dealer: DealerId) -> int:
        venue = self.venues[dealer]
        assert venue.problems == [], venue.problems  # every call as Deribit documents it
        count: int = venue.executed
        return count

    async def _teardown(self) -> None:
        """After the engines stopped: no Block RFQ is left open for the makers to see (each was
        traded, fenced, or cancelled when its RFQ closed)."""
        left = {d: [r["block_rfq_id"] for r in v.block_rfqs.values() if v._view(r["block_rfq_id"])["state"]
                    in ("created", "open")] for d, v in self.venues.items()}
        await super()._teardown()
        assert not any(left.values()), f"Block RFQs left open: {left}"


class DeribitBlockCollarKit(DeribitBlockKit):
    """``ccxt-block-collar``: the same dealers and acts, on the package a Block RFQ is for: a
    collar on Deribit's linear USDC options, 10 BTC of it sold as one block (the requester sells
    the 50,000 put and buys the 70,000 call at half the size; Deribit lists it as amount 5 with
    ratios 2 and 1). A maker's price for the structure is per unit of amount, 2 puts less 1 call;
    the quote is per BTC of the package, less Deribit's options fee (0.03% of 1.5 BTC of
    underlying at the 60,000 index: 27 USDC): desk-a's makers 1190/800 -> 763 and 1185/800,
    desk-b's 1180/800 -> 753 and 1175/800."""

    kind = "ccxt-block-collar"
    SIZE = "10"
    PUTS = {PRIMARY: ("1190", "1185"), BACKUP: ("1180", "1175")}

    def spec(self, dealers: tuple[DealerId, ...] = DEALERS, **overrides: Any) -> RfqSpec:
        from tests.ccxt_dealers.conftest import OPTION_EXPIRY

        def option(strike: int, kind: str) -> dict[str, str]:
            return {"kind": "option", "underlying": "BTC", "quote_ccy": "USDC",
                    "expiry": OPTION_EXPIRY.isoformat(), "strike": str(strike), "option_type": kind}

        data: dict[str, Any] = {
            "legs": [{"instrument": option(50000, "put"), "side": "sell", "ratio": "1"},
                     {"instrument": option(70000, "call"), "side": "buy", "ratio": "0.5"}],
            "direction": "sell", "quantity": self.SIZE, "quantity_unit": "BTC", "dealers": list(dealers),
            "requester": "alice", "mandate": "treasury", "window_ms": 2000,
        }
        data.update(overrides)
        return RfqSpec.from_dict(data)

    def _makers(self, dealer: DealerId) -> list[tuple[str, dict[str, str]]]:
        from tests.ccxt_dealers.conftest import OPTION_EXPIRY
        from tests.ccxt_dealers.fake_deribit_block import linear_option

        put, call = linear_option(OPTION_EXPIRY, 50000, "P"), linear_option(OPTION_EXPIRY, 70000, "C")
        return [(maker, {put: price, call: "800"})
                for maker, price in zip(("MAKER1", "MAKER2"), self.PUTS[dealer], strict=True)]
