"""Collateral and margin for OTC desks (pure: agreements, fills and a market in, numbers out).

Each desk with a ``[collateral.<dealer>]`` agreement (``CollateralAgreement``) margins its
netting set, the positions built from that desk's fills, one way: the miner posts.

- **Notional** of a position, in its quote currency: a hashprice NDF's ``|H| x days x U``
  (``U``, the traded unit price, USD or BTC per PH/s per day); a future's or a sold option's
  ``|quantity| x traded price`` (an option's at its strike); an inverse contract's USD face
  value. A bought option has none: its premium is paid.
- **Initial margin** = notional x the agreement's rate for that currency (Luxor: 35% of a
  USD notional, 18% of a BTC one). 100 PH/s x 30 days x 60 USD = 180,000 USD -> 63,000 USD;
  100 PH/s x 31 days x 0.00080 BTC = 2.48 BTC -> 0.4464 BTC.
- **Mark to market** of the netting set: the sum of its open positions' unrealized P&L at the
  marks (``positions.build_positions``), in USD (BTC amounts at spot).
- **Variation margin** = ``max(0, -MTM - threshold)``: the desk's exposure to us beyond the
  uncollateralised threshold.
- **Required** = initial margin (in USD) + variation margin.
- **Posted value** = sum of ``amount x price x (1 - haircut)`` over the posted assets (USD at
  1, BTC at spot): BTC collateral loses value when BTC falls.
- **Call**: a shortfall ``required - posted`` of at least the minimum transfer amount is
  called, in full (USD rounded up to the cent; in BTC, ``shortfall / (spot x (1 - haircut))``
  rounded up to the satoshi); an excess of at least it may be returned; anything smaller
  moves nothing.

``margin_forecast`` walks price paths: for each shock ``s`` the BTC price and the USD
hashprice move linearly to ``(1 + s)`` times today's over ``days`` days (the hashprice in
BTC, at constant difficulty, does not move). Each day is marked, every desk's call computed,
and met in the agreement's ``deliver`` asset, so that the next day starts from the collateral
then posted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Literal

from pydantic import BaseModel, field_validator, model_validator

from rfq_engine.configtypes import STRICT, DecimalStr
from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Future, HashpriceNdf, Option, Perpetual
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.positions import Position, TradeRecord, build_positions

__all__ = [
    "ASSETS",
    "CollateralAgreement",
    "DeskMargin",
    "check_collateral",
    "collateral_value",
    "desk_margin",
    "initial_margin",
    "margin_call",
    "margin_forecast",
    "margin_report",
    "ndf_notional",
    "position_notional",
    "shocked",
    "variation_margin",
]

ASSETS = ("USD", "BTC")
"""The currencies an agreement may name: of notionals, of eligible collateral."""
DEFAULT_SHOCKS = tuple(Decimal(s) for s in ("-0.3", "-0.2", "-0.1", "0.1", "0.2", "0.3"))
Asset = Literal["USD", "BTC"]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)
CENT = Decimal("0.01")
SATOSHI = Decimal("0.00000001")


def _d(value: Decimal) -> str:
    return decimal_str(_OUT.plus(value))


def _assets(value: Mapping[str, Decimal], what: str) -> dict[str, Decimal]:
    out = {}
    for key, amount in value.items():
        asset = key.strip().upper()
        if asset not in ASSETS:
            raise ValueError(f"{what}: {key!r} is not one of {', '.join(ASSETS)}")
        out[asset] = amount
    return out


class CollateralAgreement(BaseModel):
    """``[collateral.<dealer>]``: the collateral agreement with one OTC desk. Amounts in USD."""

    model_config = STRICT

    initial_margin: dict[str, DecimalStr]
    """Fraction of notional by the notional's currency, in [0, 1]: ``{USD = "0.35", BTC = "0.18"}``."""
    threshold: DecimalStr = Decimal(0)
    """Exposure (USD) the desk leaves uncollateralised before it calls variation margin."""
    minimum_transfer: DecimalStr = Decimal(0)
    """The smallest amount (USD) called or returned."""
    eligible: dict[str, DecimalStr] = {"USD": Decimal(0)}
    """Eligible collateral and its haircut in [0, 1): ``{USD = "0", BTC = "0.2"}``."""
    posted: dict[str, DecimalStr] = {}
    """Collateral posted now, by asset (``rfq hedge margin --posted`` overrides)."""
    deliver: Asset = "USD"
    """The asset a call is met in (forecast); must be eligible."""

    @field_validator("initial_margin")
    @classmethod
    def _rates(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        out = _assets(value, "initial_margin")
        if not out:
            raise ValueError('initial_margin: name a rate per currency, like {USD = "0.35", BTC = "0.18"}')
        for asset, rate in out.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"initial_margin.{asset}: must be a fraction of notional in [0, 1] "
                                 f"(0.35 = 35%), got {decimal_str(rate)}")
        return out

    @field_validator("threshold", "minimum_transfer")
    @classmethod
    def _usd(cls, value: Decimal) -> Decimal:
        if not 0 <= value < Decimal("1e15"):
            raise ValueError(f"must be an amount in USD, >= 0 and below 1E+15, got {decimal_str(value)}")
        return value

    @field_validator("eligible")
    @classmethod
    def _haircuts(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        out = _assets(value, "eligible")
        if not out:
            raise ValueError("eligible: name at least one asset with its haircut")
        for asset, haircut in out.items():
            if not 0 <= haircut < 1:
                raise ValueError(f"eligible.{asset}: a haircut is a fraction in [0, 1) (0.2 = 20%), "
                                 f"got {decimal_str(haircut)}")
        return out

    @field_validator("posted")
    @classmethod
    def _posted(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        out = _assets(value, "posted")
        for asset, amount in out.items():
            if amount < 0:
                raise ValueError(f"posted.{asset}: must be >= 0, got {decimal_str(amount)}")
        return out

    @model_validator(mode="after")
    def _consistent(self) -> CollateralAgreement:
        for asset in self.posted:
            if asset not in self.eligible:
                raise ValueError(f"posted.{asset}: not eligible collateral (eligible: "
                                 f"{', '.join(self.eligible)})")
        if self.deliver not in self.eligible:
            raise ValueError(f"deliver: {self.deliver} is not eligible collateral")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "initial_margin": {k: _d(v) for k, v in self.initial_margin.items()},
            "threshold": _d(self.threshold), "minimum_transfer": _d(self.minimum_transfer),
            "eligible": {k: _d(v) for k, v in self.eligible.items()},
            "posted": {k: _d(v) for k, v in self.posted.items()}, "deliver": self.deliver,
        }


def check_collateral(collateral: Mapping[str, CollateralAgreement], dealer_ids: Iterable[str]) -> None:
    """Every agreement names a configured dealer (``ValueError`` otherwise)."""
    unknown = sorted(set(collateral) - set(dealer_ids))
    if unknown:
        raise ValueError(f"collateral: {', '.join(unknown)} not configured under [[dealers]]")


# ------------------------------------------------------------------------------ figures


def ndf_notional(hashrate_ph: Decimal, days: int, unit_price: Decimal) -> Decimal:
    """A hashprice NDF's notional: ``H x N x U`` in U's currency."""
    with localcontext(_WORK):
        return _OUT.plus(abs(hashrate_ph) * days * unit_price)


def initial_margin(notional: Decimal, currency: str, agreement: CollateralAgreement) -> Decimal:
    """``notional x`` the agreement's rate for ``currency`` (the notional's currency)."""
    rate = agreement.initial_margin.get(currency.upper())
    if rate is None:
        raise ValidationError("initial_margin", f"the agreement has no rate for a {currency} notional "
                              f"(it names {', '.join(agreement.initial_margin)})")
    with localcontext(_WORK):
        return _OUT.plus(abs(notional) * rate)


def position_notional(position: Position) -> tuple[Decimal, str]:
    """The position's notional and its currency (see the module docstring); 0 for a bought option."""
    instrument = position.instrument
    ccy = instrument.quote_ccy.upper()
    with localcontext(_WORK):
        if position.inverse:
            return abs(position.notional), ccy
        if isinstance(instrument, HashpriceNdf):
            return ndf_notional(position.quantity, instrument.days, position.average_price), ccy
        if isinstance(instrument, Option):
            return (abs(position.quantity) * instrument.strike if position.quantity < 0 else Decimal(0)), ccy
        if isinstance(instrument, Future | Perpetual):
            return abs(position.quantity) * position.average_price, ccy
        return Decimal(0), ccy  # spot: delivered, nothing to margin


def _to_usd(amount: Decimal, ccy: str, btc_price: Decimal) -> Decimal:
    if ccy == "USD":
        return amount
    if ccy == "BTC":
        with localcontext(_WORK):
            return amount * btc_price
    raise ValidationError("currency", f"cannot value {ccy} in USD (USD and BTC only)")


def variation_margin(mtm_usd: Decimal, agreement: CollateralAgreement) -> Decimal:
    """``max(0, -MTM - threshold)``: what the desk's exposure to us asks beyond the threshold."""
    return max(Decimal(0), -mtm_usd - agreement.threshold)


def collateral_value(posted: Mapping[str, Decimal], agreement: CollateralAgreement,
                     btc_price: Decimal) -> Decimal:
    """The posted collateral in USD after haircuts (an ineligible asset counts for nothing)."""
    total = Decimal(0)
    with localcontext(_WORK):
        for asset, amount in posted.items():
            haircut = agreement.eligible.get(asset)
            if haircut is not None:
                total += _to_usd(amount, asset, btc_price) * (1 - haircut)
    return _OUT.plus(total)


def margin_call(required_usd: Decimal, posted_usd: Decimal, agreement: CollateralAgreement,
                btc_price: Decimal) -> dict[str, Any]:
    """What moves: ``deliver`` (a shortfall of at least the minimum transfer), ``return`` (an
    excess of at least it) or ``none``; in USD (rounded up to the cent) and in BTC after the
    BTC haircut (rounded up to the satoshi; None when BTC is not eligible)."""
    gap = required_usd - posted_usd
    mta = agreement.minimum_transfer
    if gap > 0 and gap >= mta:
        kind = "deliver"
    elif gap < 0 and -gap >= mta:
        kind = "return"
    else:
        return {"kind": "none", "usd": Decimal(0), "btc": Decimal(0) if "BTC" in agreement.eligible else None}
    usd = abs(gap).quantize(CENT, rounding=ROUND_CEILING)
    btc = None
    if "BTC" in agreement.eligible:
        with localcontext(_WORK):
            btc = usd / (btc_price * (1 - agreement.eligible["BTC"]))
        btc = btc.quantize(SATOSHI, rounding=ROUND_CEILING)
    return {"kind": kind, "usd": usd, "btc": btc}


@dataclass(frozen=True, slots=True)
class DeskMargin:
    dealer: str
    rows: tuple[dict[str, Any], ...]
    initial_margin_usd: Decimal
    mtm_usd: Decimal
    variation_margin_usd: Decimal
    required_usd: Decimal
    posted: Mapping[str, Decimal]
    posted_value_usd: Decimal
    call: Mapping[str, Any]
    unmarked: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        call = dict(self.call)
        return {
            "dealer": self.dealer,
            "positions": list(self.rows),
            "initial_margin_usd": _d(self.initial_margin_usd),
            "mtm_usd": _d(self.mtm_usd),
            "exposure_usd": _d(max(Decimal(0), -self.mtm_usd)),
            "variation_margin_usd": _d(self.variation_margin_usd),
            "required_usd": _d(self.required_usd),
            "posted": {k: _d(v) for k, v in self.posted.items()},
            "posted_value_usd": _d(self.posted_value_usd),
            "call": {"kind": call["kind"], "usd": _d(call["usd"]),
                     "btc": None if call["btc"] is None else _d(call["btc"])},
            "unmarked": list(self.unmarked),
        }


def desk_margin(dealer: str, agreement: CollateralAgreement, positions: Sequence[Position],
                btc_price: Decimal, posted: Mapping[str, Decimal] | None = None) -> DeskMargin:
    """One desk's initial margin, mark to market, variation margin, required against posted, call."""
    posted = dict(agreement.posted if posted is None else posted)
    rows, im_total, mtm, unmarked = [], Decimal(0), Decimal(0), []
    for position in positions:
        if position.status in ("closed", "settled"):
            continue
        notional, ccy = position_notional(position)
        im = initial_margin(notional, ccy, agreement) if notional else Decimal(0)
        im_usd = _to_usd(im, ccy, btc_price)
        pnl = position.unrealized_pnl
        btc_unit_ndf = isinstance(position.instrument, HashpriceNdf) and ccy != "USD"
        if btc_unit_ndf and position.mark_source != "settlement":
            pnl = None  # the market's hashprice is in USD: a BTC-unit NDF needs its index (--settle)
        pnl_usd = None
        if pnl is None:
            unmarked.append(position.key)
        else:
            pnl_usd = pnl if position.inverse else _to_usd(pnl, ccy, btc_price)
            mtm += pnl_usd
        im_total += im_usd
        rows.append({"instrument": position.key, "quantity": _d(position.quantity),
                     "notional": _d(notional), "currency": ccy, "initial_margin": _d(im),
                     "initial_margin_usd": _d(im_usd),
                     "mark": None if position.mark is None else _d(position.mark),
                     "mtm_usd": None if pnl_usd is None else _d(pnl_usd)})
    vm = variation_margin(mtm, agreement)
    required = _OUT.plus(im_total + vm)
    value = collateral_value(posted, agreement, btc_price)
    return DeskMargin(dealer, tuple(rows), _OUT.plus(im_total), _OUT.plus(mtm), _OUT.plus(vm), required,
                      posted, value, margin_call(required, value, agreement, btc_price), tuple(unmarked))


# ------------------------------------------------------------------------------ reports


def _btc(snapshot: MarketSnapshot) -> Decimal:
    price = snapshot.spot.get("BTC")
    if price is None:
        raise ValidationError("market.spot.BTC", "a BTC price is needed to value BTC and margin in USD")
    return price


def shocked(snapshot: MarketSnapshot, shock: Decimal) -> MarketSnapshot:
    """The snapshot with every spot and the USD hashprice times ``1 + shock``."""
    if not -1 < shock < 10:
        raise ValidationError("shock", f"must be a relative move in (-1, 10) (-0.2 = -20%), got {shock}")
    with localcontext(_WORK):
        factor = 1 + shock
        spot = {k: _OUT.plus(v * factor) for k, v in snapshot.spot.items()}
        hashprice = None if snapshot.hashprice is None else _OUT.plus(snapshot.hashprice * factor)
    return replace(snapshot, spot=spot, hashprice=hashprice)


def _by_desk(trades: Sequence[TradeRecord], desks: Iterable[str]) -> dict[str, list[TradeRecord]]:
    out: dict[str, list[TradeRecord]] = {d: [] for d in desks}
    for trade in trades:
        if trade.dealer_id in out:
            out[trade.dealer_id].append(trade)
    return out


def _margins(agreements: Mapping[str, CollateralAgreement], book: Mapping[str, list[TradeRecord]],
             snapshot: MarketSnapshot, today: date, posted: Mapping[str, Mapping[str, Decimal]],
             settlements: Mapping[str, Decimal] | None) -> dict[str, DeskMargin]:
    btc = _btc(snapshot)
    return {dealer: desk_margin(dealer, agreement,
                                build_positions(book[dealer], snapshot, today, settlements),
                                btc, posted.get(dealer))
            for dealer, agreement in sorted(agreements.items())}


def margin_forecast(agreements: Mapping[str, CollateralAgreement], trades: Sequence[TradeRecord],
                    snapshot: MarketSnapshot, today: date, shocks: Sequence[Decimal] = DEFAULT_SHOCKS, *,
                    days: int = 5, posted: Mapping[str, Mapping[str, Decimal]] | None = None,
                    settlements: Mapping[str, Decimal] | None = None) -> list[dict[str, Any]]:
    """Per shock and desk, the calls of each day of the path (see the module docstring)."""
    if not 1 <= days <= 366:
        raise ValidationError("days", f"a path is 1 to 366 days, got {days}")
    book = _by_desk(trades, agreements)
    start = {d: dict(a.posted if (posted or {}).get(d) is None else (posted or {})[d])
             for d, a in agreements.items()}
    out = []
    for shock in shocks:
        holding = {d: dict(p) for d, p in start.items()}
        calls: dict[str, list[dict[str, Any]]] = {d: [] for d in agreements}
        for day in range(1, days + 1):
            with localcontext(_WORK):
                move = shock * day / days
            market = shocked(snapshot, move)
            btc = _btc(market)
            when = today + timedelta(days=day)
            for dealer, margin in _margins(agreements, book, market, when, holding, settlements).items():
                call = margin.call
                if call["kind"] == "none":
                    continue
                agreement = agreements[dealer]
                asset = agreement.deliver
                sign = 1 if call["kind"] == "deliver" else -1
                amount = call["usd"] if asset == "USD" else call["btc"]
                held = holding[dealer].get(asset, Decimal(0))
                holding[dealer][asset] = max(Decimal(0), held + sign * amount)
                calls[dealer].append({
                    "day": day, "date": when.isoformat(), "btc_price": _d(btc), "kind": call["kind"],
                    "mtm_usd": _d(margin.mtm_usd), "required_usd": _d(margin.required_usd),
                    "posted_value_usd": _d(margin.posted_value_usd), "usd": _d(call["usd"]),
                    "btc": None if call["btc"] is None else _d(call["btc"])})
        desks = []
        for dealer, rows in calls.items():
            delivered = [r for r in rows if r["kind"] == "deliver"]
            desks.append({
                "dealer": dealer, "calls": rows,
                "first_call_day": delivered[0]["day"] if delivered else None,
                "total_called_usd": _d(sum((Decimal(r["usd"]) for r in delivered), Decimal(0))),
                "total_called_btc": (None if "BTC" not in agreements[dealer].eligible else
                                     _d(sum((Decimal(r["btc"]) for r in delivered), Decimal(0)))),
                "posted_after": {k: _d(v) for k, v in holding[dealer].items()},
            })
        out.append({"shock": _d(shock), "days": days, "desks": desks})
    return out


def margin_report(agreements: Mapping[str, CollateralAgreement], trades: Sequence[TradeRecord],
                  snapshot: MarketSnapshot, today: date, shocks: Sequence[Decimal] = DEFAULT_SHOCKS, *,
                  days: int = 5, posted: Mapping[str, Mapping[str, Decimal]] | None = None,
                  settlements: Mapping[str, Decimal] | None = None) -> dict[str, Any]:
    """Today's margin per desk, the desks traded with that have no agreement, and the forecast."""
    posted = dict(posted or {})
    unknown = sorted(set(posted) - set(agreements))
    if unknown:
        raise ValidationError("posted", f"no collateral agreement for {', '.join(unknown)}")
    book = _by_desk(trades, agreements)
    today_margin = _margins(agreements, book, snapshot, today, posted, settlements)
    uncovered = sorted({t.dealer_id for t in trades if t.dealer_id and t.dealer_id not in agreements})
    return {
        "as_of": today.isoformat(),
        "btc_price": _d(_btc(snapshot)),
        "hashprice": None if snapshot.hashprice is None else _d(snapshot.hashprice),
        "agreements": {d: a.to_dict() for d, a in sorted(agreements.items())},
        "desks": [m.to_dict() for m in today_margin.values()],
        "without_agreement": uncovered,
        "forecast": margin_forecast(agreements, trades, snapshot, today, shocks, days=days,
                                    posted=posted, settlements=settlements),
    }
