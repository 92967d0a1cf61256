"""The risk monitor's figures and alerts (pure: config, fills, margin and a market in, numbers out).

- **Counterparty exposure** (an OTC desk): ``max(0, MTM) + initial margin`` in USD, what a
  default of the desk would cost (what it owes us, and the margin we posted with it), against
  its credit line, the smallest of the mandates' ``credit_limit`` for it: ``usage = exposure /
  line``.
- **Desk margin usage** = required / posted value (``margin.desk_margin``); a call to deliver
  is an alert of its own.
- **Venue margin** (a ``[risk.venues.<dealer>]`` account: collateral, initial and maintenance
  rates): per position, equity, initial and maintenance margin, usage = maintenance / equity,
  the call to bring equity back to the initial margin and the liquidation price with its
  distance from the mark, ``|liquidation - mark| / mark``. Inverse contracts in coin
  (``inverse_margin``), linear ones in USD (``linear_margin``). Where the venue's account was
  read through ccxt (``venue_accounts``: ``dealer_adapters.ccxt.margin``), its equity, initial
  and maintenance margin and liquidation price replace the estimate's, and each row's
  ``sources`` says which came from where (``rfq_engine.hedging.venuemargin``); a read that
  failed is a ``venue_unread`` alert and the row is the estimate.
- **Collateral posted**: the latest ``collateral.posted`` event of a desk or a venue
  (``rfq_engine.hedging.inputs``, given as ``posted``) replaces the config's ``posted`` /
  ``collateral``; each desk and venue row's ``collateral_source`` says ``posted`` (with
  ``posted_at``, ``posted_by``, ``posted_seq``) or ``config``, and a venue row its ``collateral``.
- **Funding** of a perpetual over ``n`` intervals: ``paid = quantity x mark x rate x n`` (a
  long pays a positive rate; negative: received); per day at the venue's rate, and paid so far
  by each perpetual position since its first fill (``funding.perpetual_funding``, given ``now``).
- **Coverage** of this month's forecast: ``|hedged| / forecast`` against the program's ratio;
  an alert when they differ by more than the tolerance.
- **Liquidity**: ``|position| / depth`` where a depth is known (``[risk] depth``, by
  instrument-key prefix).

Each figure past its threshold (``RiskConfig``) is an ``Alert``; ``rfq_engine.hedging.riskwatch``
turns them into audit events, the metric, the web banner and the webhook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictInt, field_validator

from rfq_engine.configtypes import STRICT, DecimalStr
from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.instruments import Perpetual
from rfq_engine.domain.margin import VenueAccountMargin
from rfq_engine.domain.pricing import MarketSnapshot, fair_price
from rfq_engine.domain.rfq import RfqSpec
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.book import PositionBook
from rfq_engine.hedging.funding import perpetual_funding
from rfq_engine.hedging.inputs import Posted, collateral_source
from rfq_engine.hedging.margin import SATOSHI, CollateralAgreement, desk_margin
from rfq_engine.hedging.positions import Position, TradeRecord
from rfq_engine.hedging.venuemargin import account_row, with_venue

__all__ = [
    "Alert",
    "RiskConfig",
    "VenueAccount",
    "check_risk",
    "collateral_shortfalls",
    "funding_paid",
    "funding_rates",
    "inverse_margin",
    "linear_margin",
    "planned_trade",
    "risk_report",
]

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)
CENT = Decimal("0.01")


def _d(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(_OUT.plus(value))


def _r(value: Decimal | None, places: int = 4) -> str:
    """A figure rounded for an alert's message (the event's ``value`` keeps every digit)."""
    if value is None:
        return ""
    return decimal_str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def _fraction(value: Decimal, what: str, *, low: Decimal = Decimal(0),
              high: Decimal = Decimal(1)) -> Decimal:
    if not low <= value <= high:
        raise ValueError(f"{what}: must be in [{decimal_str(low)}, {decimal_str(high)}], "
                         f"got {decimal_str(value)}")
    return value


class VenueAccount(BaseModel):
    """``[risk.venues.<dealer>]``: the margin account at a venue (an exchange dealer)."""

    model_config = STRICT

    collateral: DecimalStr
    """The account's collateral, in coin for inverse contracts (BTC), in USD for linear ones."""
    initial_margin: DecimalStr
    """Fraction of notional, in (0, 1]."""
    maintenance_margin: DecimalStr
    """Fraction of notional, in (0, 1], at most the initial margin: below it the venue liquidates."""
    funding_rate: DecimalStr | None = None
    """A perpetual's funding rate per interval, for the estimate (0.0001 = 0.01%)."""
    funding_intervals_per_day: StrictInt = Field(default=3, ge=1, le=24)
    currency: str = Field(default="BTC", pattern=r"^[A-Za-z][A-Za-z0-9]{1,11}$")
    """The account's margin currency at the venue (BTC for inverse contracts; USDT, USDC or USD for
    linear ones): the balance read through ccxt."""
    read: bool = Field(default=True, strict=True)
    """For a ccxt dealer: read the account's margin from the venue (``fetch_balance``,
    ``fetch_positions``); the figures above are then the fallback where the venue states none."""

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.upper()

    @field_validator("collateral")
    @classmethod
    def _collateral(cls, value: Decimal) -> Decimal:
        return _fraction(value, "collateral", high=Decimal("1e15"))

    @field_validator("initial_margin", "maintenance_margin")
    @classmethod
    def _rate(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(f"must be a fraction of notional in (0, 1], got {decimal_str(value)}")
        return _fraction(value, "margin rate")

    @field_validator("funding_rate")
    @classmethod
    def _funding(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else _fraction(value, "funding_rate", low=Decimal("-0.1"),
                                                    high=Decimal("0.1"))


class RiskConfig(BaseModel):
    """``[risk]``: the thresholds that raise alerts, and where alerts go."""

    model_config = STRICT

    credit_usage: DecimalStr = Decimal("0.8")
    """Exposure / credit line at or above this alerts (0.8 = 80%)."""
    margin_usage: DecimalStr = Decimal("0.8")
    """Required / posted (a desk), maintenance / equity (a venue) at or above this alerts."""
    liquidation_distance: DecimalStr = Decimal("0.15")
    """A liquidation price closer to the mark than this fraction alerts."""
    coverage_tolerance: DecimalStr = Decimal("0.1")
    """This month's coverage further than this from the program's hedge ratio alerts."""
    liquidity_ratio: DecimalStr = Decimal("0.25")
    """A position larger than this fraction of the book's depth alerts."""
    funding_usd_per_day: DecimalStr | None = None
    """Funding paid per day (estimate, USD) above this alerts."""
    depth: dict[str, DecimalStr] = {}
    """Book depth by instrument-key prefix, in the instrument's units: ``{"BTC-USD-FUT" = "150"}``."""
    venues: dict[str, VenueAccount] = {}
    on_collateral_short: Literal["approval", "halt"] = "approval"
    """Before a scheduled RFQ: a desk short of collateral makes the program ask a person, or wait."""
    webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)
    webhook_timeout_ms: StrictInt = Field(default=3000, ge=100, le=30_000)
    interval_s: StrictInt = Field(default=300, ge=10, le=86_400)
    """How often ``rfq serve`` re-evaluates the figures."""

    @field_validator("credit_usage", "margin_usage", "liquidation_distance", "coverage_tolerance")
    @classmethod
    def _fractions(cls, value: Decimal) -> Decimal:
        return _fraction(value, "threshold")

    @field_validator("liquidity_ratio")
    @classmethod
    def _liquidity(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(f"liquidity_ratio: must be > 0, got {decimal_str(value)}")
        return _fraction(value, "liquidity_ratio", high=Decimal(100))

    @field_validator("funding_usd_per_day")
    @classmethod
    def _funding(cls, value: Decimal | None) -> Decimal | None:
        return None if value is None else _fraction(value, "funding_usd_per_day", high=Decimal("1e15"))

    @field_validator("depth")
    @classmethod
    def _depth(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, depth in value.items():
            if not 0 < depth < Decimal("1e15"):
                raise ValueError(f"depth.{key}: must be > 0 and below 1E+15, got {decimal_str(depth)}")
        return value


def funding_rates(risk: RiskConfig) -> dict[str, tuple[Decimal, int]]:
    """Each venue account's funding rate and intervals a day, where ``[risk.venues]`` gives one."""
    return {dealer: (account.funding_rate, account.funding_intervals_per_day)
            for dealer, account in risk.venues.items() if account.funding_rate is not None}


def check_risk(risk: RiskConfig, dealer_ids: Sequence[str]) -> None:
    """Every ``[risk.venues.<dealer>]`` names a configured dealer (``ValueError`` otherwise)."""
    unknown = sorted(set(risk.venues) - set(dealer_ids))
    if unknown:
        raise ValueError(f"risk.venues: {', '.join(unknown)} not configured under [[dealers]]")


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    subject: str
    value: Decimal | None
    threshold: Decimal | None
    message: str

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.subject

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "subject": self.subject, "value": _d(self.value),
                "threshold": _d(self.threshold), "message": self.message}


# ------------------------------------------------------------------------------ venue margin


def _distance(liquidation: Decimal | None, mark: Decimal) -> Decimal | None:
    if liquidation is None or liquidation <= 0:
        return None
    return abs(liquidation - mark) / mark


def _settled(gap: Decimal) -> Decimal:
    """A gap rounded to 1E-18 first: 1/price is not exact, and a residue of 1E-49 is no call."""
    return gap.quantize(Decimal("1e-18"), rounding=ROUND_HALF_EVEN)


def inverse_margin(notional: Decimal, entry: Decimal, mark: Decimal, collateral: Decimal,
                   initial_rate: Decimal, maintenance_rate: Decimal) -> dict[str, Any]:
    """An inverse contract's account in coin: ``notional`` signed (USD, positive long).

    equity = collateral + N x (1/entry - 1/mark); initial = |N| / mark x im; maintenance =
    |N| / mark x mm; call = max(0, initial - equity) (rounded up to the satoshi); the
    liquidation price solves equity = maintenance: a short ``|N| (mm - 1) / (C - |N| / entry)``
    (none when C >= |N| / entry: a short of at most its collateral cannot be liquidated), a long
    ``|N| (1 + mm) / (C + |N| / entry)``."""
    if entry <= 0 or mark <= 0:
        raise ValidationError("price", "an inverse contract needs positive prices")
    with localcontext(_WORK):
        size = abs(notional)
        equity = collateral + notional * (1 / entry - 1 / mark)
        initial = size / mark * initial_rate
        maintenance = size / mark * maintenance_rate
        if notional < 0:
            base = collateral - size / entry
            liquidation = size * (maintenance_rate - 1) / base if base < 0 else None
        else:
            liquidation = size * (1 + maintenance_rate) / (collateral + size / entry) if size else None
        call = max(Decimal(0), _settled(initial - equity)).quantize(SATOSHI, rounding=ROUND_CEILING)
        usage = maintenance / equity if equity > 0 else None
        return {"currency": "BTC", "equity": _d(equity), "initial_margin": _d(initial),
                "maintenance_margin": _d(maintenance), "usage": _d(usage), "call": _d(call),
                "call_usd": _d((call * mark).quantize(CENT, rounding=ROUND_CEILING)),
                "liquidation_price": _d(liquidation), "distance": _d(_distance(liquidation, mark)),
                "_usage": usage, "_distance": _distance(liquidation, mark), "_call": call}


def linear_margin(quantity: Decimal, entry: Decimal, mark: Decimal, collateral: Decimal,
                  initial_rate: Decimal, maintenance_rate: Decimal) -> dict[str, Any]:
    """A linear contract's account in USD: ``quantity`` signed (BTC, positive long).

    equity = C + q (mark - entry); initial = |q| mark im; maintenance = |q| mark mm; the
    liquidation price solves equity = maintenance: a short ``(C + |q| entry) / (|q| (1 + mm))``,
    a long ``(q entry - C) / (q (1 - mm))`` (none when not positive)."""
    with localcontext(_WORK):
        size = abs(quantity)
        equity = collateral + quantity * (mark - entry)
        initial = size * mark * initial_rate
        maintenance = size * mark * maintenance_rate
        liquidation: Decimal | None = None
        if quantity < 0:
            liquidation = (collateral + size * entry) / (size * (1 + maintenance_rate))
        elif quantity > 0 and maintenance_rate < 1:
            liquidation = (quantity * entry - collateral) / (quantity * (1 - maintenance_rate))
        call = max(Decimal(0), _settled(initial - equity)).quantize(CENT, rounding=ROUND_CEILING)
        usage = maintenance / equity if equity > 0 else None
        return {"currency": "USD", "equity": _d(equity), "initial_margin": _d(initial),
                "maintenance_margin": _d(maintenance), "usage": _d(usage), "call": _d(call),
                "call_usd": _d(call), "liquidation_price": _d(liquidation),
                "distance": _d(_distance(liquidation, mark)),
                "_usage": usage, "_distance": _distance(liquidation, mark), "_call": call}


def funding_paid(quantity: Decimal, mark: Decimal, rate: Decimal, intervals: int) -> Decimal:
    """``quantity x mark x rate x intervals``: what a perpetual pays (negative: receives)."""
    with localcontext(_WORK):
        return _OUT.plus(quantity * mark * rate * intervals)


# ------------------------------------------------------------------------------ the report


def _of(posted: Mapping[str, Posted], dealer: str, account: str) -> Posted | None:
    """The dealer's latest ``collateral.posted`` for this kind of account, if any."""
    found = posted.get(dealer)
    return found if found is not None and found.account == account else None


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _venue_rows(dealer: str, account: VenueAccount, positions: Sequence[Position], cfg: RiskConfig,
                alerts: list[Alert], read: VenueAccountMargin | None = None,
                posted: Posted | None = None) -> list[dict[str, Any]]:
    rows = []
    if read is not None and read.error is not None:
        alerts.append(Alert("venue_unread", dealer, None, None,
                            f"{dealer}: the venue's margin account could not be read ({read.error}); "
                            "its figures are the config's estimate"))
    for position in positions:
        if position.status != "open" or position.mark is None or position.mark <= 0:
            continue
        currency = position.instrument.underlying.upper() if position.inverse else "USD"
        given = None if posted is None else posted.amounts.get(currency)
        collateral = account.collateral if given is None else given
        if position.inverse:
            figures = inverse_margin(position.notional, position.average_price, position.mark,
                                     collateral, account.initial_margin, account.maintenance_margin)
        else:
            figures = linear_margin(position.quantity, position.average_price, position.mark,
                                    collateral, account.initial_margin, account.maintenance_margin)
        figures = with_venue(figures, position, read)
        figures.update(collateral_source(None if given is None else posted), collateral=_d(collateral))
        subject = f"{dealer}:{position.key}"
        usage, distance = figures["_usage"], figures["_distance"]
        if usage is None or usage >= cfg.margin_usage:
            alerts.append(Alert("margin_usage", subject, usage, cfg.margin_usage,
                                f"{subject}: maintenance margin is {_r(usage) or 'more than all'} of the "
                                f"equity (alert at {_d(cfg.margin_usage)})"))
        if distance is not None and distance < cfg.liquidation_distance:
            alerts.append(Alert("liquidation_distance", subject, distance, cfg.liquidation_distance,
                                f"{subject}: liquidation at {_r(Decimal(figures['liquidation_price']), 2)} "
                                f"is {_r(distance)} "
                                f"from the mark {_r(Decimal(figures.get('venue_mark') or position.mark), 2)} "
                                f"(alert under {_d(cfg.liquidation_distance)}; "
                                f"{figures['sources']['liquidation_price']})"))
        if figures["_call"] > 0:
            alerts.append(Alert("margin_call", subject, figures["_call"], Decimal(0),
                                f"{subject}: {figures['call']} {figures['currency']} to post to restore "
                                "the initial margin"))
        rows.append({"venue": dealer, "instrument": position.key, "inverse": position.inverse,
                     "mark": _d(position.mark), **_public(figures)})
    return rows


def _funding_rows(dealer: str, account: VenueAccount, positions: Sequence[Position], cfg: RiskConfig,
                  alerts: list[Alert]) -> list[dict[str, Any]]:
    """The funding estimate of each open perpetual at the venue, at its account's rate."""
    rows = []
    for position in positions:
        if not isinstance(position.instrument, Perpetual) or position.status != "open" \
                or position.mark is None or position.mark <= 0 or account.funding_rate is None:
            continue
        quantity = position.notional / position.mark if position.inverse else position.quantity
        per_day = funding_paid(quantity, position.mark, account.funding_rate,
                               account.funding_intervals_per_day)
        rows.append({"venue": dealer, "instrument": position.key, "quantity": _d(quantity),
                     "mark": _d(position.mark), "rate": _d(account.funding_rate),
                     "paid_usd_per_day": _d(per_day)})
        subject = f"{dealer}:{position.key}"
        if cfg.funding_usd_per_day is not None and per_day > cfg.funding_usd_per_day:
            alerts.append(Alert("funding", subject, per_day, cfg.funding_usd_per_day,
                                f"{subject}: funding of {_r(per_day, 2)} USD a day (alert above "
                                f"{_d(cfg.funding_usd_per_day)})"))
    return rows


def risk_report(
    *,
    cfg: RiskConfig,
    trades: Sequence[TradeRecord] = (),
    snapshot: MarketSnapshot,
    today: date,
    agreements: Mapping[str, CollateralAgreement],
    credit_lines: Mapping[str, tuple[Decimal, str]],
    coverage: Sequence[Mapping[str, Any]] = (),
    settlements: Mapping[str, Decimal] | None = None,
    venue_accounts: Mapping[str, VenueAccountMargin] | None = None,
    now: datetime | None = None,
    posted: Mapping[str, Posted] | None = None,
    book: PositionBook | None = None,
) -> tuple[dict[str, Any], list[Alert]]:
    """Every figure of the module docstring (JSON-ready) and the alerts they raise. ``credit_lines`` maps a
    dealer to (its smallest credit limit, the mandate naming it); ``coverage`` are
    ``report.coverage`` rows of this month; ``venue_accounts`` the venues' accounts as read, by dealer;
    with ``now``, ``funding_accrued`` is each perpetual position's funding paid so far; ``posted``
    the latest ``collateral.posted`` per dealer (``inputs.load_inputs``). The positions are
    ``book``'s (``book.PositionBook``, kept between passes) when given, else ``trades``'."""
    read = dict(venue_accounts or {})
    posted = dict(posted or {})
    alerts: list[Alert] = []
    btc = snapshot.spot.get("BTC")
    if book is None:
        book = PositionBook.of(trades, snapshot, today)
    counterparties: list[dict[str, Any]] = []
    desks: list[dict[str, Any]] = []
    venues: list[dict[str, Any]] = []
    funding: list[dict[str, Any]] = []
    for dealer in sorted(book.dealers | set(agreements)):
        positions = book.positions(dealer, snapshot, today, settlements)
        if dealer in cfg.venues:
            venues.extend(_venue_rows(dealer, cfg.venues[dealer], positions, cfg, alerts, read.get(dealer),
                                      _of(posted, dealer, "venue")))
            funding.extend(_funding_rows(dealer, cfg.venues[dealer], positions, cfg, alerts))
            continue
        initial, mtm = Decimal(0), Decimal(0)
        if dealer in agreements and btc is not None:
            given = _of(posted, dealer, "desk")
            margin = desk_margin(dealer, agreements[dealer], positions, btc,
                                 None if given is None else given.amounts)
            initial, mtm = margin.initial_margin_usd, margin.mtm_usd
            usage = margin.required_usd / margin.posted_value_usd if margin.posted_value_usd else None
            desks.append({**margin.to_dict(), "usage": _d(usage), **collateral_source(given)})
            if margin.required_usd > 0 and (usage is None or usage >= cfg.margin_usage):
                alerts.append(Alert("margin_usage", dealer, usage, cfg.margin_usage,
                                    f"{dealer}: margin required {_r(margin.required_usd, 2)} USD is "
                                    f"{_r(usage) or 'more than all'} of the collateral posted "
                                    f"(alert at {_d(cfg.margin_usage)})"))
            if margin.call["kind"] == "deliver":
                alerts.append(Alert("margin_call", dealer, margin.call["usd"],
                                    agreements[dealer].minimum_transfer,
                                    f"{dealer}: a margin call of {_r(margin.call['usd'], 2)} USD"))
        else:
            mtm = sum((p.unrealized_pnl or Decimal(0) for p in positions if p.status == "open"), Decimal(0))
        exposure = max(Decimal(0), mtm) + initial
        line = credit_lines.get(dealer)
        usage = exposure / line[0] if line and line[0] > 0 else None
        counterparties.append({"dealer": dealer, "mtm_usd": _d(mtm), "initial_margin_usd": _d(initial),
                               "exposure_usd": _d(exposure), "credit_line": _d(line[0]) if line else None,
                               "mandate": line[1] if line else None, "usage": _d(usage)})
        if usage is not None and usage >= cfg.credit_usage:
            alerts.append(Alert("credit_usage", dealer, usage, cfg.credit_usage,
                                f"{dealer}: exposure {_r(exposure, 2)} USD is {_r(usage)} of its credit line "
                                f"{_d(line[0]) if line else ''} (alert at {_d(cfg.credit_usage)})"))
    everything = book.positions(None, snapshot, today, settlements)
    covered = []
    for row in coverage:
        value = None if row.get("coverage") is None else Decimal(str(row["coverage"]))
        target = Decimal(str(row["target_ratio"]))
        covered.append(dict(row))
        if value is not None and abs(value - target) > cfg.coverage_tolerance:
            alerts.append(Alert("coverage", str(row["program"]), value, target,
                                f"program {row['program']}: {row['period']} is {_r(value)} hedged against a "
                                f"ratio of {_d(target)} (tolerance {_d(cfg.coverage_tolerance)})"))
    liquidity = []
    for position in everything:
        if position.status != "open":
            continue
        prefix = max((p for p in cfg.depth if position.key.startswith(p)), key=len, default=None)
        if prefix is None:
            continue
        ratio = abs(position.quantity) / cfg.depth[prefix]
        liquidity.append({"instrument": position.key, "quantity": _d(position.quantity),
                          "depth": _d(cfg.depth[prefix]), "ratio": _d(ratio)})
        if ratio > cfg.liquidity_ratio:
            alerts.append(Alert("liquidity", position.key, ratio, cfg.liquidity_ratio,
                                f"{position.key}: the position is {_r(ratio)} of the book's depth "
                                f"{_d(cfg.depth[prefix])} (alert above {_d(cfg.liquidity_ratio)})"))
    return {
        "as_of": today.isoformat(), "btc_price": _d(btc),
        "counterparties": counterparties, "desks": desks, "venues": venues, "funding": funding,
        "coverage": covered, "liquidity": liquidity, "alerts": [a.to_dict() for a in alerts],
        "venue_accounts": [account_row(read[d]) for d in sorted(read)],
        "funding_accrued": [] if now is None else perpetual_funding(book.perpetual_trades, funding_rates(cfg),
                                                                    snapshot, now),
    }, alerts


# ------------------------------------------------------------------------------ before an RFQ


def planned_trade(spec: RfqSpec, dealer: str, snapshot: MarketSnapshot, today: date,
                  index: int = 0) -> TradeRecord:
    """A planned RFQ as if filled in full with ``dealer`` at the model's price (its legs at
    their fair prices, the package at their signed sum)."""
    references = tuple(fair_price(leg.instrument, snapshot, today) for leg in spec.legs)
    signs = spec.package.leg_signs(spec.direction)
    with localcontext(_WORK):
        price = _OUT.plus(sum((s * leg.ratio * p for s, leg, p in zip(signs, spec.legs, references,
                                                                        strict=True)), Decimal(0)))
    return TradeRecord(fill_id=f"planned-{index}", rfq_id=f"planned-{index}", spec=spec, price=price,
                       quantity=spec.quantity, filled_at=snapshot.as_of, dealer_id=dealer,
                       reference_legs=references)


def collateral_shortfalls(agreements: Mapping[str, CollateralAgreement], trades: Sequence[TradeRecord],
                          planned: Sequence[RfqSpec], snapshot: MarketSnapshot, today: date,
                          posted: Mapping[str, Posted] | None = None, *,
                          book: PositionBook | None = None) -> list[dict[str, Any]]:
    """For each desk the planned RFQs ask that has a collateral agreement: the margin it would
    require were they all filled with it, after every fill so far, against the collateral
    posted (the latest ``collateral.posted`` in ``posted``, else the config's); the desks whose
    call would be a delivery (a shortfall of at least the minimum transfer). The fills so far
    are ``book``'s when given, else ``trades``."""
    btc = snapshot.spot.get("BTC")
    if btc is None or not planned:
        return []
    if book is None:
        book = PositionBook.of(trades, snapshot, today)
    asked = sorted({str(d) for spec in planned for d in spec.dealers} & set(agreements))
    out = []
    for dealer in asked:
        agreement = agreements[dealer]
        given = _of(posted or {}, dealer, "desk")
        amounts = None if given is None else given.amounts
        before = desk_margin(dealer, agreement, book.positions(dealer, snapshot, today), btc, amounts)
        extra = [planned_trade(spec, dealer, snapshot, today, i) for i, spec in enumerate(planned)]
        after = desk_margin(dealer, agreement, book.positions_with(dealer, extra, snapshot, today), btc,
                            amounts)
        if after.call["kind"] != "deliver":
            continue
        out.append({"dealer": dealer, "required_before_usd": _d(before.required_usd),
                    "required_usd": _d(after.required_usd), "posted_value_usd": _d(after.posted_value_usd),
                    "short_usd": _d(after.call["usd"]),
                    "short_btc": None if after.call["btc"] is None else _d(after.call["btc"]),
                    **collateral_source(given)})
    return out
