"""Fair values and notionals of instruments and packages, from a market snapshot, in Decimal.

Pure: a function of the snapshot and the date it is given, no clock, no I/O. The
engine uses it for two things, and this is why each model is as simple as it is:

- a *reference price* a dealer's quote is compared with (the mandate's tolerance
  catches fat fingers and stale prices, hundreds of bps away, not a few bps of
  model error), and
- a *notional* that mandate caps and credit limits are counted in.

Models (T in years = calendar days / 365):

- spot and perpetual: the spot (a perpetual's funding keeps it at spot);
- dated future: ``spot * (1 + basis * T)``, the basis being the annual carry of the
  underlying (defaults to the risk-free rate);
- option: Black-76 on that same forward, discounted at the risk-free rate,
  ``DF * (F N(d1) - K N(d2))`` for a call, with T floored at one day so an option on
  its expiry day still has a (tiny) time value and the formula never divides by zero.
  Using the futures' forward keeps options and futures on one snapshot consistent:
  put-call parity holds against the future, ``C - P = DF * (F - K)``;
- hashprice NDF: the snapshot's hashprice (USD per PH/s per day) as a flat forward.

Money is Decimal throughout, the normal CDF included: it is computed from ``erf`` by
a positive-term series (no cancellation) for small arguments and by the continued
fraction of ``erfc`` in the tails, in a local 50-digit context, and every result is
rounded to 28 significant digits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType

from rfq_engine.domain.errors import Unavailable, ValidationError
from rfq_engine.domain.instruments import (
    Future,
    HashpriceNdf,
    Instrument,
    Option,
    OptionType,
    Perpetual,
    Spot,
    instrument_to_dict,
)
from rfq_engine.domain.rfq import Direction, Leg, Package, RfqSpec
from rfq_engine.domain.values import decimal_str

__all__ = [
    "DAYS_PER_YEAR",
    "MarketSnapshot",
    "PriceUnavailable",
    "black76",
    "fair_price",
    "forward_price",
    "leg_fair_prices",
    "main_leg_index",
    "norm_cdf",
    "package_notional",
    "package_value",
    "reference_underlying_price",
    "unit_notional",
    "year_fraction",
]

DAYS_PER_YEAR = Decimal(365)
ONE_DAY = Decimal(1) / DAYS_PER_YEAR

_WORK = Context(
    prec=50,
    rounding=ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""Working precision: 22 digits above the result's 28, so series and ratios lose nothing visible."""

_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN, Emin=-999_999, Emax=999_999)
_EPS = Decimal("1e-48")
_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
_SERIES_LIMIT = Decimal(4)
"""Below this, erf's series needs at most ~100 terms; above it the erfc continued fraction does."""


class PriceUnavailable(Unavailable):
    """The snapshot lacks an input an instrument's fair price or notional needs."""

    def __init__(self, instrument: Instrument, missing: str) -> None:
        described = ", ".join(f"{k}={v}" for k, v in instrument_to_dict(instrument).items())
        super().__init__(f"no price for {instrument.kind.value} ({described}): {missing}")
        self.instrument = instrument
        self.missing = missing


def _frozen(values: Mapping[str, Decimal], name: str, *, sign: str) -> Mapping[str, Decimal]:
    """A read-only copy keyed by upper-case code; ``sign``: positive, non_negative or any."""
    out: dict[str, Decimal] = {}
    for key, value in values.items():
        where = f"{name}.{key}"
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValidationError(where, f"must be a finite Decimal, got {value!r}")
        if sign == "positive" and value <= 0:
            raise ValidationError(where, f"must be positive, got {decimal_str(value)}")
        if sign == "non_negative" and value < 0:
            raise ValidationError(where, f"must not be negative, got {decimal_str(value)}")
        out[key.upper()] = value
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketSnapshot:
    """The market at one instant: what every fair value in this module is computed from.

    ``spot``, ``vol`` (annualised implied volatility, 0.55 = 55%) and ``basis`` (annual
    carry of a dated future over spot; an underlying without one carries at ``rate``)
    are keyed by underlying code (``BTC``); ``hashprice`` is USD per PH/s per day for
    the ``HASHPRICE`` underlying. ``as_of`` is when it was observed: consumers decide
    from it whether it is too old to trade on. The mappings are copied and frozen.
    """

    spot: Mapping[str, Decimal]
    vol: Mapping[str, Decimal]
    rate: Decimal
    as_of: datetime
    basis: Mapping[str, Decimal] = field(default_factory=dict)
    hashprice: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "spot", _frozen(self.spot, "spot", sign="positive"))
        object.__setattr__(self, "vol", _frozen(self.vol, "vol", sign="non_negative"))
        object.__setattr__(self, "basis", _frozen(self.basis, "basis", sign="any"))
        if not isinstance(self.rate, Decimal) or not self.rate.is_finite():
            raise ValidationError("rate", f"must be a finite Decimal, got {self.rate!r}")
        hashprice = self.hashprice
        if hashprice is not None and (
            not isinstance(hashprice, Decimal) or not hashprice.is_finite() or hashprice <= 0
        ):
            raise ValidationError("hashprice", f"must be a positive Decimal, got {hashprice!r}")
        if self.as_of.tzinfo is None:
            raise ValidationError("as_of", "must be a timezone-aware UTC datetime")

    def carry(self, underlying: str) -> Decimal:
        """The annual basis of ``underlying``: its own if given, else the risk-free rate."""
        return self.basis.get(underlying.upper(), self.rate)


# --- Decimal special functions -------------------------------------------------------------


def _erf_series(z: Decimal) -> Decimal:
    """erf(z) for z >= 0 by ``2/sqrt(pi) e^{-z^2} sum 2^n z^{2n+1} / (1*3*...*(2n+1))``.

    Every term is positive, so unlike the alternating Taylor series nothing cancels.
    """
    term = z
    total = z
    two_z2 = 2 * z * z
    n = 0
    while term > _EPS * total:
        n += 1
        term = term * two_z2 / (2 * n + 1)
        total += term
    return 2 / _PI.sqrt() * (-z * z).exp() * total


def _erfc_continued_fraction(z: Decimal) -> Decimal:
    """erfc(z) for z >= 4: ``e^{-z^2}/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))``.

    Evaluated by the modified Lentz method; it keeps full relative accuracy in the tail,
    where ``1 - erf(z)`` would be all cancellation.
    """
    tiny = Decimal("1e-300")
    f = z
    c = z
    d = Decimal(0)
    j = 0
    while True:
        j += 1
        a = Decimal(j) / 2
        d = z + a * d
        d = 1 / (d if d != 0 else tiny)
        c = z + a / c
        if c == 0:
            c = tiny
        delta = c * d
        f *= delta
        if abs(delta - 1) < _EPS:
            return (-z * z).exp() / _PI.sqrt() / f


def _erfc_nonneg(z: Decimal) -> Decimal:
    if z < _SERIES_LIMIT:
        return 1 - _erf_series(z)
    return _erfc_continued_fraction(z)


def _norm_cdf_work(x: Decimal) -> Decimal:
    """N(x) in the working context (callers hold ``_WORK``)."""
    z = abs(x) / Decimal(2).sqrt()
    tail = _erfc_nonneg(z) / 2  # P(X > |x|)
    return 1 - tail if x >= 0 else tail


def norm_cdf(x: Decimal) -> Decimal:
    """The standard normal CDF N(x) = (1 + erf(x / sqrt 2)) / 2, in Decimal, to 28 digits."""
    with localcontext(_WORK):
        result = _norm_cdf_work(x)
    return _OUT.plus(result)


def black76(
    forward: Decimal,
    strike: Decimal,
    vol: Decimal,
    t: Decimal,
    discount: Decimal,
    option_type: OptionType,
) -> Decimal:
    """Black-76 price of a European option on ``forward``: ``discount * (F N(d1) - K N(d2))``.

    ``d1 = (ln(F/K) + vol^2 t / 2) / (vol sqrt t)``, ``d2 = d1 - vol sqrt t``; a put is
    ``discount * (K N(-d2) - F N(-d1))``. With no variance left (vol or t zero) it is the
    discounted intrinsic value. Black-Scholes is the case ``F = S e^{rt}``, ``discount = e^{-rt}``.
    """
    if forward <= 0 or strike <= 0:
        raise ValueError("black76 needs a positive forward and strike")
    if vol < 0 or t < 0 or discount <= 0:
        raise ValueError("black76 needs vol >= 0, t >= 0 and a positive discount factor")
    with localcontext(_WORK):
        std = vol * t.sqrt()
        if std == 0:
            intrinsic = forward - strike if option_type is OptionType.CALL else strike - forward
            price = discount * max(intrinsic, Decimal(0))
        else:
            d1 = ((forward / strike).ln() + std * std / 2) / std
            d2 = d1 - std
            if option_type is OptionType.CALL:
                price = discount * (forward * _norm_cdf_work(d1) - strike * _norm_cdf_work(d2))
            else:
                price = discount * (strike * _norm_cdf_work(-d2) - forward * _norm_cdf_work(-d1))
        # The difference of two rounded products can dip a hair below zero deep out of the money.
        price = max(price, Decimal(0))
    return _OUT.plus(price)


# --- fair prices -----------------------------------------------------------------------------


def year_fraction(today: date, until: date, *, floor_days: int = 0) -> Decimal:
    """Calendar days from ``today`` to ``until`` over 365, never less than ``floor_days`` days."""
    days = max((until - today).days, floor_days)
    return Decimal(days) / DAYS_PER_YEAR


def _spot(instrument: Instrument, snapshot: MarketSnapshot) -> Decimal:
    spot = snapshot.spot.get(instrument.underlying.upper())
    if spot is None:
        raise PriceUnavailable(instrument, f"the snapshot has no spot for {instrument.underlying}")
    return spot


def _hashprice(instrument: Instrument, snapshot: MarketSnapshot) -> Decimal:
    if snapshot.hashprice is None:
        raise PriceUnavailable(instrument, "the snapshot has no hashprice")
    return snapshot.hashprice


def _unit_hashprice(instrument: HashpriceNdf, snapshot: MarketSnapshot) -> Decimal:
    """The NDF's unit price in its own currency: the USD hashprice, or for an NDF quoted in
    BTC per PH/s per day (as Luxor also quotes) the USD hashprice over the BTC spot."""
    hashprice = _hashprice(instrument, snapshot)
    if instrument.quote_ccy.upper() != "BTC":
        return hashprice
    btc = snapshot.spot.get("BTC")
    if btc is None:
        raise PriceUnavailable(instrument, "a BTC-unit hashprice needs the BTC spot")
    with localcontext(_WORK):
        return hashprice / btc


def forward_price(instrument: Future | Option, snapshot: MarketSnapshot, today: date) -> Decimal:
    """The dated forward of the instrument's underlying at its expiry: ``spot * (1 + basis * T)``.

    Options use T floored at one day (see the module docstring); futures do not, so a
    future on its expiry day (or past it) is worth spot.
    """
    spot = _spot(instrument, snapshot)
    floor = 1 if isinstance(instrument, Option) else 0
    t = year_fraction(today, instrument.expiry, floor_days=floor)
    with localcontext(_WORK):
        forward = spot * (1 + snapshot.carry(instrument.underlying) * t)
    if forward <= 0:
        raise PriceUnavailable(instrument, "the carry makes the forward non-positive")
    return _OUT.plus(forward)


def fair_price(instrument: Instrument, snapshot: MarketSnapshot, today: date) -> Decimal:
    """The model value of one unit of ``instrument`` in its quote currency (per BTC, per PH/s/day).

    Raises ``PriceUnavailable`` naming the instrument when the snapshot lacks an input.
    """
    if isinstance(instrument, Spot | Perpetual):
        return _OUT.plus(_spot(instrument, snapshot))
    if isinstance(instrument, Future):
        return forward_price(instrument, snapshot, today)
    if isinstance(instrument, Option):
        vol = snapshot.vol.get(instrument.underlying.upper())
        if vol is None:
            missing = f"the snapshot has no vol for {instrument.underlying}"
            raise PriceUnavailable(instrument, missing)
        forward = forward_price(instrument, snapshot, today)
        t = year_fraction(today, instrument.expiry, floor_days=1)
        with localcontext(_WORK):
            discount = (-snapshot.rate * t).exp()
        return black76(forward, instrument.strike, vol, t, discount, instrument.option_type)
    if isinstance(instrument, HashpriceNdf):
        return _OUT.plus(_unit_hashprice(instrument, snapshot))
    raise TypeError(f"no model for {type(instrument).__name__}")  # pragma: no cover


def leg_fair_prices(package: Package, snapshot: MarketSnapshot, today: date) -> tuple[Decimal, ...]:
    """Each leg's instrument fair price, unsigned and unscaled by ratio, in leg order."""
    return tuple(fair_price(leg.instrument, snapshot, today) for leg in package.legs)


def package_value(
    package: Package, direction: Direction, snapshot: MarketSnapshot, today: date
) -> Decimal:
    """Net value per unit of package quantity in the RFQ's orientation.

    ``sum(sign * ratio * fair_price)`` with the signs of ``Package.leg_signs``: for a
    sell, what the requester receives; for a buy or two-way, what the requester pays.
    This is the number a dealer's bid or ask for the package is compared with.
    A zero-cost collar is worth about zero, and may be worth either sign.
    """
    prices = leg_fair_prices(package, snapshot, today)
    signs = package.leg_signs(direction)
    with localcontext(_WORK):
        terms = zip(signs, package.legs, prices, strict=True)
        total = sum((sign * leg.ratio * price for sign, leg, price in terms), Decimal(0))
    return _OUT.plus(total)


# --- notionals ------------------------------------------------------------------------------


def unit_notional(leg: Leg, snapshot: MarketSnapshot) -> Decimal:
    """Notional, in quote currency, of one unit of the leg's instrument (not scaled by ratio).

    A BTC-type leg (spot, perpetual, future, option) counts one underlying unit at spot:
    an option is counted at the notional of the underlying it covers, not its premium,
    because caps and credit limits are about the exposure hedged. A hashprice NDF is
    sized in PH/s for ``days`` days, so one unit is ``days * hashprice``.
    """
    instrument = leg.instrument
    if isinstance(instrument, HashpriceNdf):
        return _OUT.plus(Decimal(instrument.days) * _hashprice(instrument, snapshot))
    return _OUT.plus(_spot(instrument, snapshot))


def _leg_weights(package: Package, snapshot: MarketSnapshot) -> list[Decimal]:
    with localcontext(_WORK):
        return [leg.ratio * unit_notional(leg, snapshot) for leg in package.legs]


def main_leg_index(package: Package, snapshot: MarketSnapshot) -> int:
    """The leg carrying the most notional per package unit (the first on a tie)."""
    weights = _leg_weights(package, snapshot)
    return weights.index(max(weights))


def package_notional(
    spec_or_package: RfqSpec | Package, quantity: Decimal | None, snapshot: MarketSnapshot
) -> Decimal:
    """Notional in quote currency: ``quantity * max over legs of (ratio * unit_notional)``.

    The maximum, not the sum: the legs of a package hedge one exposure together. A collar
    on 100 BTC (buy a put, sell a call) or a calendar roll of 100 BTC (buy back the near
    future, sell the next) is a 100 BTC hedge, not 200; summing legs would make caps and
    credit limits bite at half the intended size for every multi-leg hedge.

    ``quantity`` defaults to the spec's quantity when ``None`` (required for a bare package).
    """
    if isinstance(spec_or_package, RfqSpec):
        package = spec_or_package.package
        qty = spec_or_package.quantity if quantity is None else quantity
    else:
        if quantity is None:
            raise ValueError("package_notional of a bare Package needs a quantity")
        package, qty = spec_or_package, quantity
    with localcontext(_WORK):
        notional = qty * max(_leg_weights(package, snapshot))
    return _OUT.plus(notional)


def reference_underlying_price(package: Package, snapshot: MarketSnapshot) -> Decimal:
    """The price of the package's main underlying: the base its quotes' distance is measured in.

    The spot of the main leg's underlying, or the hashprice for a hashprice NDF. Measuring
    a quote's distance from the reference in bps of this (rather than of the package's
    own value) keeps the tolerance meaningful for packages worth about zero, like a collar.
    """
    leg = package.legs[main_leg_index(package, snapshot)]
    if isinstance(leg.instrument, HashpriceNdf):
        return _OUT.plus(_unit_hashprice(leg.instrument, snapshot))
    return _OUT.plus(_spot(leg.instrument, snapshot))
