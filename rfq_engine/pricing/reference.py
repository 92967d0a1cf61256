"""Reference prices: what the engine believes a package is worth when the quotes arrive.

The mandate's price-tolerance rule rejects a quote too far from the reference (a fat
finger or a stale price). A reference is only as good as its market data, so a
provider refuses to produce one from a snapshot older than its ``max_age``: a quote
checked against a stale market would be accepted or rejected for the wrong reason.
The engine records every reference it used (``PackageReference.to_dict``) in the audit
log, so compliance can see what each quote was judged against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from rfq_engine.domain.errors import Unavailable
from rfq_engine.domain.pricing import (
    MarketSnapshot,
    PriceUnavailable,
    leg_fair_prices,
    package_value,
    reference_underlying_price,
)
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.domain.values import decimal_str, format_ts, utc_now

__all__ = [
    "ModelReferenceProvider",
    "PackageReference",
    "ReferencePriceProvider",
    "ReferenceUnavailable",
]


class ReferenceUnavailable(Unavailable):
    """No usable reference: the market data is stale or lacks what the package needs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PackageReference:
    """The reference for one RFQ's package.

    ``value`` is the package's net value per unit of package quantity in the RFQ's
    orientation (``Package.leg_signs``: what the requester receives on a sell, pays on
    a buy or two-way), directly comparable with a dealer's bid or ask.
    ``underlying_price`` is the spot of the package's main underlying (the hashprice for
    an NDF): quote distances are measured in bps of it, so a near-zero package such as
    a collar is judged on the scale of the market it hedges. ``legs`` are the per-leg
    fair prices, unsigned and unscaled by ratio, in leg order.
    """

    value: Decimal
    underlying_price: Decimal
    as_of: datetime
    source: str
    legs: tuple[Decimal, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, decimals as strings: the form the audit log records."""
        return {
            "value": decimal_str(self.value),
            "underlying_price": decimal_str(self.underlying_price),
            "as_of": format_ts(self.as_of),
            "source": self.source,
            "legs": [decimal_str(price) for price in self.legs],
        }


@runtime_checkable
class ReferencePriceProvider(Protocol):
    """Where the engine gets reference prices and the market it sizes notionals with.

    Both methods raise ``ReferenceUnavailable`` rather than return stale or partial data.
    """

    async def package_reference(self, spec: RfqSpec) -> PackageReference: ...

    async def snapshot(self) -> MarketSnapshot: ...


def _seconds(delta: timedelta) -> str:
    """A duration as a decimal number of seconds, to the millisecond (for messages)."""
    micros = delta // timedelta(microseconds=1)
    return decimal_str((Decimal(micros) / 1_000_000).quantize(Decimal("0.001")))


class ModelReferenceProvider:
    """Prices packages with the models of ``rfq_engine.domain.pricing`` from one snapshot.

    ``update`` swaps the snapshot (a feed, a demo or a test moving the market). Freshness
    is judged from the snapshot's own ``as_of`` against ``clock()``, never from when it
    was handed over: a snapshot that was already old on arrival is still old.
    ``max_age=None`` disables the check (only for a fixed, hand-written market).
    """

    def __init__(
        self,
        snapshot: MarketSnapshot,
        max_age: timedelta | None,
        clock: Callable[[], datetime] = utc_now,
        *,
        source: str = "model",
    ) -> None:
        if max_age is not None and max_age <= timedelta(0):
            raise ValueError("max_age must be positive (or None to disable the staleness check)")
        self._snapshot = snapshot
        self._max_age = max_age
        self._clock = clock
        self._source = source

    @property
    def max_age(self) -> timedelta | None:
        return self._max_age

    def update(self, snapshot: MarketSnapshot) -> None:
        """Replace the market the provider prices from."""
        self._snapshot = snapshot

    def _fresh(self) -> tuple[MarketSnapshot, datetime]:
        snapshot = self._snapshot
        now = self._clock()
        if self._max_age is not None:
            age = now - snapshot.as_of
            if age > self._max_age:
                raise ReferenceUnavailable(
                    f"stale: as_of {format_ts(snapshot.as_of)} is {_seconds(age)} s old, "
                    f"limit {_seconds(self._max_age)} s"
                )
        return snapshot, now

    async def snapshot(self) -> MarketSnapshot:
        """The current snapshot, if fresh enough to size notionals with."""
        return self._fresh()[0]

    async def package_reference(self, spec: RfqSpec) -> PackageReference:
        """The model value of ``spec``'s package today (UTC date of ``clock()``)."""
        snapshot, now = self._fresh()
        today = now.astimezone(UTC).date()
        try:
            legs = leg_fair_prices(spec.package, snapshot, today)
            value = package_value(spec.package, spec.direction, snapshot, today)
            base = reference_underlying_price(spec.package, snapshot)
        except PriceUnavailable as exc:
            raise ReferenceUnavailable(str(exc)) from exc
        return PackageReference(
            value=value, underlying_price=base, as_of=snapshot.as_of, source=self._source, legs=legs
        )
