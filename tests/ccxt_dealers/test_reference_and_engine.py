"""Reference prices from the venue (mid, mark, staleness) and the whole path through the
engine: an RFQ priced against the venue's mid, quoted by an exchange dealer, awarded,
executed as an IOC order, filled, with TCA in the decision record."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from dealer_adapters.ccxt import CcxtDealers
from rfq_engine.domain import DealerId, RfqSpec, RfqState, utc_now
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.ccxt_reference import CcxtReferenceConfig, CcxtReferenceProvider, open_ccxt_reference
from rfq_engine.pricing.reference import ReferenceUnavailable
from rfq_engine.readmodels.decision import build_decision_record
from rfq_engine.store import EventFilter, open_store
from tests.ccxt_dealers.conftest import config
from tests.ccxt_dealers.fake_okx import FakeOkx, now_ms
from tests.engine.conftest import mandate_config

BASE = MarketSnapshot(spot={"BTC": D(30000)}, vol={"BTC": D("0.5")}, rate=D("0.05"), as_of=utc_now())


def spec(**overrides: Any) -> RfqSpec:
    data: dict[str, Any] = {
        "legs": [{"instrument": {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDT"},
                  "side": "sell"}],
        "direction": "sell", "quantity": "0.1", "quantity_unit": "BTC", "dealers": ["okx-book"],
        "requester": "alice", "mandate": "treasury", "window_ms": 600,
    }
    data.update(overrides)
    return RfqSpec.from_dict(data)


async def provider(okx: FakeOkx, **overrides: Any) -> CcxtReferenceProvider:
    cfg = CcxtReferenceConfig.model_validate({"exchange": "okx", "urls": {"rest": okx.url},
                                              "spot": {"BTC": "USDT"}, **overrides})
    made = await open_ccxt_reference(cfg, lambda: BASE)
    made.exchange.timeout_on_exit = 0
    return made


async def test_mid_reference_with_the_spot_as_underlying_price(okx: FakeOkx) -> None:
    ref = await provider(okx)
    try:
        reference = await ref.package_reference(spec())
        # perpetual mid (40000 + 40010) / 2; spot mid (39995 + 40005) / 2
        assert (reference.value, reference.underlying_price) == (D(40005), D(40000))
        assert reference.source == "ccxt:okx:mid" and reference.legs == (D(40005),)
        bought = await ref.package_reference(spec(direction="buy", legs=[
            {"instrument": {"kind": "perpetual", "underlying": "BTC", "quote_ccy": "USDT"}, "side": "sell"}]))
        assert bought.value == D(-40005)  # a leg sold in a bought package subtracts
        snap = await ref.snapshot()
        assert snap.spot["BTC"] == D(40000) and snap.vol == BASE.vol  # venue spot, [market] vol
    finally:
        await ref.close()


async def test_mark_price_and_staleness_limit(okx: FakeOkx) -> None:
    okx.tickers["BTC-USDT-SWAP"] = {"last": "40001", "bidPx": "40000", "askPx": "40010",
                                    "markPx": "40007.5", "idxPx": "40003", "ts": str(now_ms())}
    ref = await provider(okx, price="mark", max_age_s=2)
    try:
        reference = await ref.package_reference(spec())
        assert reference.value == D("40007.5") and reference.source == "ccxt:okx:mark"
        okx.set_book("BTC-USDT", bids=[("39995", "1")], asks=[("40005", "1")], ts=now_ms() - 10_000)
        stale = r"stale: okx BTC/USDT as_of .* is 10\.\d+ s old, limit 2 s"
        with pytest.raises(ReferenceUnavailable, match=stale):
            await ref.package_reference(spec())
        unlisted = spec(legs=[{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USDT",
                                              "expiry": "2030-01-01"}, "side": "sell"}])
        with pytest.raises(ReferenceUnavailable, match="is not listed"):
            await ref.package_reference(unlisted)
    finally:
        await ref.close()


async def test_engine_rfq_through_an_exchange_dealer_with_venue_reference_and_tca(
        okx: FakeOkx, tmp_path: Path) -> None:
    store = open_store("memory://")
    await store.open()
    ref = await provider(okx)
    dealers = CcxtDealers({DealerId("okx-book"): config(okx, tmp_path)})
    mandate = mandate_config(dealers={"okx-book": {"credit_limit": "100000000"}}, price_tolerance_bps="100")
    engine = RfqEngine(store=store, adapters=[dealers], mandates={"treasury": Mandate("treasury", mandate)},
                       reference=ref, config=EngineConfig(confirm_timeout_ms=5000))
    await engine.start()
    dealers.exchange(DealerId("okx-book")).timeout_on_exit = 0
    try:
        assert engine.dealer_online(DealerId("okx-book"))
        rfq_id = await engine.submit(spec())
        assert await engine.wait(rfq_id, 10) is RfqState.FILLED
        [fill] = await store.fills(rfq_id)
        assert fill.quantity == D("0.1") and fill.price == D("39975.0025")
        [order] = okx.order_requests
        assert order["ordType"] == "ioc" and order["sz"] == "10"
        events = await store.events(EventFilter(rfq_id=rfq_id))
        record = build_decision_record(events)
        assert record["reference"]["source"] == "ccxt:okx:mid"
        # sold at 39975.0025 vs the 40005 perpetual mid, in bps of the 40000 spot:
        # (39975.0025 - 40005) / 40000 * 10000 = -7.4999375 -> -7.50
        assert record["tca"]["vs_request_bps"] == "-7.5"
        assert record["tca"]["vs_award_bps"] is None  # the engine records no award-time reference yet
    finally:
        await engine.stop()
        await ref.close()
        await store.close()
