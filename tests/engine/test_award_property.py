"""Property: the award is always the best valid price on the requester's side, and never an
invalid, expired, wrong-side, wrong-size or off-mandate quote (ties go to the earlier quote)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfq_engine.domain import Award, RfqNew, RfqState
from rfq_engine.engine import EngineConfig, RfqEngine
from rfq_engine.mandate import Mandate
from rfq_engine.pricing.reference import ModelReferenceProvider
from rfq_engine.store.memory import InMemoryAuditStore
from tests.engine.conftest import future_rfq, mandate_config, snapshot
from tests.engine.scripted import ScriptedDealers

TOLERANCE_BPS = 200
SPOT = Decimal(40000)


@dataclass(frozen=True)
class Answer:
    decline: bool
    offset_bps: int       # distance from the reference, in bps of spot
    quantity: str         # request is 10
    valid_ms: int         # 20 expires before the award (min validity 100 ms)
    right_side: bool      # quotes the bid (the RFQ sells)


answers = st.builds(
    Answer,
    decline=st.booleans(),
    offset_bps=st.integers(-400, 400),
    quantity=st.sampled_from(["10", "10", "10", "5", "12"]),
    valid_ms=st.sampled_from([5000, 5000, 5000, 20]),
    right_side=st.booleans(),
)


def is_valid(a: Answer) -> bool:
    return (not a.decline and a.right_side and a.quantity == "10" and a.valid_ms == 5000
            and abs(a.offset_bps) <= TOLERANCE_BPS)


async def scenario(script: list[Answer], same_price: bool) -> None:
    ids = tuple(f"d{i}" for i in range(len(script)))
    store = InMemoryAuditStore()
    await store.open()
    dealers = ScriptedDealers(ids)
    mandate = mandate_config(price_tolerance_bps=str(TOLERANCE_BPS),
                             dealers={d: {"credit_limit": "1e12"} for d in ids})
    engine = RfqEngine(store=store, adapters=[dealers], mandates={"treasury": Mandate("treasury", mandate)},
                       reference=ModelReferenceProvider(snapshot(), max_age=timedelta(minutes=5)),
                       config=EngineConfig(confirm_timeout_ms=1000, min_quote_validity_ms=100))
    await engine.start()
    try:
        rfq_id = await engine.submit(future_rfq(dealers=list(ids), window_ms=3000))
        for _ in ids:
            await dealers.next(RfqNew)
        run = engine.live(rfq_id)
        assert run is not None and run.reference is not None
        fair = run.reference.value
        sent: list[tuple[str, Decimal, Answer]] = []
        for dealer, a in zip(ids, script, strict=True):
            if a.decline:
                dealers.decline(rfq_id, dealer)
                continue
            offset = 0 if same_price else a.offset_bps
            price = (fair + SPOT * offset / 10000).quantize(Decimal("0.01"))
            side = {"bid": str(price)} if a.right_side else {"ask": str(price)}
            dealers.quote(rfq_id, dealer, quantity=a.quantity, valid_ms=a.valid_ms, **side)
            sent.append((dealer, price, a))
        valid = [(d, p) for d, p, a in sent if is_valid(a if not same_price else
                                                            Answer(a.decline, 0, a.quantity,
                                                                   a.valid_ms, a.right_side))]
        if not valid:
            assert await engine.wait(rfq_id, 5) is RfqState.NOT_FILLED
            assert not dealers.sent(Award)
            return
        best = max(p for _, p in valid)
        expected = next(d for d, p in valid if p == best)  # earliest among the best
        award = (await dealers.next(Award)).message
        assert isinstance(award, Award)
        assert (award.dealer_id, award.price) == (expected, best)
        dealers.confirm(award)
        assert await engine.wait(rfq_id, 5) is RfqState.FILLED
    finally:
        await engine.stop()
        assert (await store.verify()).ok
        await store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(answers, min_size=1, max_size=6), same_price=st.booleans())
def test_award_is_the_best_valid_quote(script: list[Answer], same_price: bool) -> None:
    asyncio.run(scenario(script, same_price))
