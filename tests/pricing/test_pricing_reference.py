"""ModelReferenceProvider: package references, staleness, missing data, the audit form."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from rfq_engine.domain.errors import RfqError
from rfq_engine.domain.pricing import MarketSnapshot, package_value
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.pricing.reference import (
    ModelReferenceProvider,
    PackageReference,
    ReferencePriceProvider,
    ReferenceUnavailable,
)

AS_OF = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def market(**over: Any) -> MarketSnapshot:
    fields: dict[str, Any] = {
        "spot": {"BTC": D("40000")},
        "vol": {"BTC": D("0.55")},
        "rate": D("0.05"),
        "as_of": AS_OF,
        "hashprice": D("55"),
    }
    fields.update(over)
    return MarketSnapshot(**fields)


def spec(legs: list[dict[str, Any]], direction: str = "buy", **over: Any) -> RfqSpec:
    data: dict[str, Any] = {
        "legs": legs,
        "direction": direction,
        "quantity": "100",
        "quantity_unit": "BTC",
        "dealers": ["desk-a", "desk-b"],
    }
    data.update(over)
    return RfqSpec.from_dict(data)


def option_leg(strike: str, option_type: str, side: str) -> dict[str, Any]:
    return {
        "instrument": {"kind": "option", "underlying": "BTC", "quote_ccy": "USD",
                       "expiry": "2027-02-26", "strike": strike, "option_type": option_type},
        "side": side,
    }


COLLAR = [option_leg("35000", "put", "buy"), option_leg("50000", "call", "sell")]
FUTURE = [{"instrument": {"kind": "future", "underlying": "BTC", "quote_ccy": "USD",
                          "expiry": "2027-02-03"}, "side": "sell"}]


async def test_reference_of_a_collar() -> None:
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), Clock(AS_OF))
    collar = spec(COLLAR)
    ref = await provider.package_reference(collar)
    today = date(2026, 11, 21)
    assert ref.value == package_value(collar.package, collar.direction, market(), today)
    assert ref.value == ref.legs[0] - ref.legs[1]
    assert ref.underlying_price == D("40000")
    assert ref.as_of == AS_OF
    assert ref.source == "model"


async def test_reference_follows_the_rfq_orientation() -> None:
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), Clock(AS_OF))
    bought = await provider.package_reference(spec(COLLAR, "buy"))
    sold = await provider.package_reference(spec(COLLAR, "sell"))
    assert sold.value == -bought.value


async def test_reference_of_an_ndf_is_based_on_the_hashprice() -> None:
    ndf = [{"instrument": {"kind": "hashprice_ndf", "underlying": "HASHPRICE", "quote_ccy": "USD",
                           "start": "2026-12-01", "days": 30}, "side": "sell"}]
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), Clock(AS_OF))
    ndf_spec = spec(ndf, "sell", quantity="50", quantity_unit="PH/s/day")
    ref = await provider.package_reference(ndf_spec)
    assert ref.value == D("55")
    assert ref.underlying_price == D("55")


async def test_to_dict_holds_strings_for_the_audit_log() -> None:
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), Clock(AS_OF), source="demo")
    ref = await provider.package_reference(spec(FUTURE, "sell"))
    # 74 days at 5%: 40000 * (1 + 0.05 * 74 / 365)
    assert ref.to_dict() == {
        "value": str(ref.value),
        "underlying_price": "40000",
        "as_of": "2026-11-21T10:00:00.000000Z",
        "source": "demo",
        "legs": [str(ref.value)],
    }
    assert abs(ref.value - D("40405.47945205479452054794521")) < D("1e-20")


async def test_stale_snapshot_is_refused_with_its_age() -> None:
    clock = Clock(AS_OF + timedelta(seconds=42))
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), clock)
    with pytest.raises(ReferenceUnavailable) as caught:
        await provider.package_reference(spec(COLLAR))
    assert str(caught.value) == (
        "stale: as_of 2026-11-21T10:00:00.000000Z is 42 s old, limit 30 s"
    )
    assert isinstance(caught.value, RfqError)
    with pytest.raises(ReferenceUnavailable, match="stale"):
        await provider.snapshot()


async def test_snapshot_exactly_at_the_limit_is_fresh() -> None:
    clock = Clock(AS_OF + timedelta(seconds=30))
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), clock)
    assert await provider.snapshot() == market()
    clock.now += timedelta(milliseconds=1)
    with pytest.raises(ReferenceUnavailable, match=r"30\.001 s old"):
        await provider.snapshot()


async def test_staleness_is_judged_on_as_of_not_on_arrival() -> None:
    clock = Clock(AS_OF + timedelta(minutes=5))
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), clock)
    provider.update(market())  # handed over now, but observed five minutes ago
    with pytest.raises(ReferenceUnavailable, match="300 s old"):
        await provider.snapshot()
    provider.update(market(as_of=clock.now))
    assert (await provider.snapshot()).as_of == clock.now


async def test_update_moves_the_market() -> None:
    provider = ModelReferenceProvider(market(), timedelta(seconds=30), Clock(AS_OF))
    before = await provider.package_reference(spec(FUTURE, "sell"))
    provider.update(replace(market(), spot={"BTC": D("44000")}))
    after = await provider.package_reference(spec(FUTURE, "sell"))
    assert after.value / before.value == D("1.1")
    assert after.underlying_price == D("44000")


async def test_missing_underlying_is_reference_unavailable() -> None:
    provider = ModelReferenceProvider(market(vol={}), timedelta(seconds=30), Clock(AS_OF))
    with pytest.raises(ReferenceUnavailable, match="no vol for BTC"):
        await provider.package_reference(spec(COLLAR))
    eth = [{"instrument": {"kind": "spot", "underlying": "ETH", "quote_ccy": "USD"}, "side": "buy"}]
    with pytest.raises(ReferenceUnavailable, match="no spot for ETH"):
        await provider.package_reference(spec(eth))


async def test_no_max_age_never_goes_stale() -> None:
    provider = ModelReferenceProvider(market(), None, Clock(AS_OF + timedelta(days=3)))
    assert (await provider.snapshot()).as_of == AS_OF
    with pytest.raises(ValueError, match="max_age"):
        ModelReferenceProvider(market(), timedelta(0), Clock(AS_OF))


def test_model_provider_satisfies_the_protocol() -> None:
    provider = ModelReferenceProvider(market(), timedelta(seconds=30))
    assert isinstance(provider, ReferencePriceProvider)
    assert provider.max_age == timedelta(seconds=30)


def test_package_reference_is_frozen() -> None:
    ref = PackageReference(D(1), D(2), AS_OF, "x", (D(1),))
    with pytest.raises(AttributeError):
        ref.value = D(3)  # type: ignore[misc]
