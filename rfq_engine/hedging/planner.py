"""The planner (pure): what a program should send for a period, or why nothing.

Inputs: the program, the period, the forecast of that period, the market snapshot, what the
program holds (signed quantity per instrument, from its fills) and its RFQs still open.

1. **Ratio:** the program's hedge ratio, capped by the mandate's ``max_hedge_ratio``.
2. **Target:** ratio x forecast production of the period (BTC; for an NDF program the
   effective hashrate in PH/s), rounded *down* to the lot size.
3. **Held:** the protective quantity in the period's contract (``targets.hedged_quantity``).
4. **Roll** (future programs): every short future that expires before the period's
   contract and has not expired is rolled: one two-leg calendar RFQ, buy back the near
   contract and sell the period's contract, for as much as the target still needs; any
   excess of the near contract is bought back (``unwind``).
5. **Gap:** what is still missing is a new hedge (``hedge``); an over-hedge of a future or
   NDF is bought back (``reduce``); options are never reduced automatically (a reason says so).
6. **Wait:** an open RFQ of the program that this plan would not resubmit (another period,
   another kind) makes the plan wait: its fill would change the position.

Every RFQ carries a deterministic ``client_rfq_id``, ``program:<name>:<period>:<kind>``,
and the requester ``program:<name>``. The engine's idempotent submit then guarantees one
RFQ per program, period and kind, also across restarts: re-planning after a crash yields
the same ids, and the engine returns the RFQs already created.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.ids import DealerId
from rfq_engine.domain.instruments import Future, HashpriceNdf, Instrument, Option, OptionType, Perpetual
from rfq_engine.domain.pricing import MarketSnapshot
from rfq_engine.domain.rfq import NDF_UNIT, Direction, HedgeContext, Leg, Package, RfqSpec, Side
from rfq_engine.domain.values import decimal_str
from rfq_engine.hedging.forecast import Period, PeriodForecast
from rfq_engine.hedging.positions import instrument_key
from rfq_engine.hedging.program import ProgramConfig, Strategy
from rfq_engine.hedging.targets import hedge_expiry, hedged_quantity, near_futures

__all__ = ["Plan", "PlannedRfq", "client_rfq_id", "plan_hedge", "requester_for"]


def requester_for(name: str) -> str:
    return f"program:{name}"


def client_rfq_id(name: str, period: Period, kind: str, retry: int = 0) -> str:
    """``program:<name>:<period>:<kind>``; a deliberate retry appends ``:r<n>``."""
    base = f"program:{name}:{period}:{kind}"
    return f"{base}:r{retry}" if retry else base


@dataclass(frozen=True, slots=True)
class PlannedRfq:
    kind: str
    spec: RfqSpec
    reason: str

    @property
    def client_rfq_id(self) -> str:
        assert self.spec.client_rfq_id is not None
        return self.spec.client_rfq_id

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "client_rfq_id": self.client_rfq_id, "reason": self.reason,
                "spec": self.spec.to_dict()}


@dataclass(frozen=True, slots=True)
class Plan:
    program: str
    period: Period
    strategy: Strategy
    forecast: PeriodForecast
    forecast_quantity: Decimal
    unit: str
    spot: Decimal | None
    hedge_ratio: Decimal
    target: Decimal
    held: Decimal
    position: Mapping[str, Decimal]
    rfqs: tuple[PlannedRfq, ...]
    reasons: tuple[str, ...]
    waiting_on: tuple[str, ...] = field(default=())

    @property
    def action(self) -> str:
        if self.waiting_on:
            return "wait"
        if not self.rfqs:
            return "nothing"
        kinds: list[str] = []
        for rfq in self.rfqs:
            base = rfq.kind.split("-")[0]
            if base not in kinds:
                kinds.append(base)
        return "+".join(kinds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (decimals as strings): the inputs and the outcome of the decision."""
        return {
            "program": self.program,
            "period": str(self.period),
            "strategy": self.strategy.value,
            "action": self.action,
            "forecast": {**self.forecast.to_dict(), "quantity": decimal_str(self.forecast_quantity),
                         "unit": self.unit},
            "spot": None if self.spot is None else decimal_str(self.spot),
            "hedge_ratio": decimal_str(self.hedge_ratio),
            "target": decimal_str(self.target),
            "held": decimal_str(self.held),
            "position": {k: decimal_str(v) for k, v in sorted(self.position.items())},
            "rfqs": [r.to_dict() for r in self.rfqs],
            "reasons": list(self.reasons),
            "waiting_on": list(self.waiting_on),
        }


def _floor(value: Decimal, lot: Decimal) -> Decimal:
    return (value / lot).to_integral_value(rounding=ROUND_FLOOR) * lot


def _ceil(value: Decimal, lot: Decimal) -> Decimal:
    return (value / lot).to_integral_value(rounding=ROUND_CEILING) * lot


def _q(value: Decimal) -> str:
    return decimal_str(value)


class _Builder:
    def __init__(self, name: str, program: ProgramConfig, period: Period, forecast_qty: Decimal,
                 unit: str, retry: int, suffix: str = "") -> None:
        self.name, self.program, self.period = name, program, period
        self.forecast_qty, self.unit, self.retry = forecast_qty, unit, retry
        self.suffix = suffix
        self.rfqs: list[PlannedRfq] = []

    def add(self, kind: str, legs: Sequence[Leg], direction: Direction, quantity: Decimal, reason: str,
            *, hedged: Decimal | None, limit: bool = False) -> None:
        p = self.program
        kind = kind + self.suffix
        spec = RfqSpec(
            package=Package(tuple(legs)),
            direction=direction,
            quantity=quantity,
            quantity_unit=self.unit if self.unit != "PH/s" else NDF_UNIT,
            dealers=tuple(DealerId(d) for d in p.dealers),
            requester=requester_for(self.name),
            mandate=p.mandate,
            window_ms=p.window_ms,
            allow_partial=p.allow_partial,
            client_rfq_id=client_rfq_id(self.name, self.period, kind, self.retry),
            limit_price=p.limit_price if limit else None,
            hedge=None if hedged is None else HedgeContext(self.forecast_qty, max(hedged, Decimal(0)),
                                                          str(self.period)),
            tags=(requester_for(self.name), f"period:{self.period}", f"kind:{kind}"),
        )
        self.rfqs.append(PlannedRfq(kind, spec, reason))


def _hedge_legs(program: ProgramConfig, period: Period, spot: Decimal | None) -> tuple[list[Leg], Direction]:
    code, ccy = program.code, program.quote_ccy
    strategy = program.strategy
    if strategy is Strategy.FUTURE:
        return [Leg(Future(code, ccy, hedge_expiry(program, period)), Side.SELL)], Direction.SELL
    if strategy is Strategy.PERPETUAL:
        return [Leg(Perpetual(code, ccy), Side.SELL)], Direction.SELL
    if strategy is Strategy.FUTURE_CALL:
        assert program.call_strike is not None
        if program.call_strike.percent and spot is None:
            raise ValidationError("spot", f"a strike as a percentage of spot needs the spot of {code}")
        expiry = hedge_expiry(program, period)
        call = Option(code, ccy, expiry, program.call_strike.resolve(spot or Decimal(0), program.strike_step),
                      OptionType.CALL)
        return [Leg(Future(code, ccy, expiry), Side.SELL),
                Leg(call, Side.BUY, program.call_ratio)], Direction.SELL
    if strategy.is_ndf:
        ndf = HashpriceNdf(code, ccy, period.start, period.days)
        side = Side.SELL if strategy is Strategy.NDF_SHORT else Side.BUY
        return [Leg(ndf, side)], Direction(side.value)
    expiry = hedge_expiry(program, period)
    assert program.put_strike is not None
    if (program.put_strike.percent or (program.call_strike is not None and program.call_strike.percent)) \
            and spot is None:
        raise ValidationError("spot", f"a strike as a percentage of spot needs the spot of {code}")
    put_k = program.put_strike.resolve(spot or Decimal(0), program.strike_step)
    legs = [Leg(Option(code, ccy, expiry, put_k, OptionType.PUT), Side.BUY)]
    if strategy is Strategy.COLLAR:
        assert program.call_strike is not None
        call_k = program.call_strike.resolve(spot or Decimal(0), program.strike_step)
        if not put_k < call_k:
            raise ValidationError("call_strike", f"the call strike {_q(call_k)} must be above the put "
                                  f"strike {_q(put_k)}")
        legs.append(Leg(Option(code, ccy, expiry, call_k, OptionType.CALL), Side.SELL))
    return legs, Direction.BUY


def plan_hedge(
    *,
    name: str,
    program: ProgramConfig,
    period: Period,
    forecast: PeriodForecast,
    snapshot: MarketSnapshot,
    holdings: Mapping[Instrument, Decimal],
    today: date,
    mandate_max_ratio: Decimal | None = None,
    open_rfqs: Sequence[tuple[str, str | None]] = (),
    retry: int = 0,
    only_rolls: bool = False,
    opex_ratio: Decimal | None = None,
    rung: int = 1,
) -> Plan:
    """The RFQs that close the gap between the period's target and what the program holds.

    ``open_rfqs`` are ``(rfq_id, client_rfq_id)`` of the program's non-terminal RFQs.
    ``only_rolls`` keeps the roll and unwind RFQs only (``rfq hedge roll``). ``rung`` is how
    many months ahead ``period`` is on the program's ladder: its ratio is that rung's, its
    kinds end ``-m<rung>`` past the first (``hedge-m2``), and only the first rung rolls.
    """
    strategy = program.strategy
    reasons: list[str] = []
    if strategy.is_ndf:
        forecast_qty, unit = forecast.effective_hashrate_ph, "PH/s"
        spot = snapshot.hashprice
    else:
        forecast_qty, unit = forecast.btc, program.code
        spot = snapshot.spot.get(program.code)
    if not 1 <= rung <= len(program.rungs):
        raise ValidationError("rung", f"the program's ladder has {len(program.rungs)} rung(s), not {rung}")
    ratio = program.rungs[rung - 1]
    if rung > 1:
        reasons.append(f"ladder: month +{rung} is hedged to {_pct(ratio)}")
    if program.opex_hedge:
        if opex_ratio is None:
            raise ValidationError("opex_hedge", "the operating-expense ratio needs the fleet forecast "
                                  "and the market's hashprice (USD per PH/s per day)")
        if opex_ratio < ratio:
            reasons.append(f"hedging the operating cost: the ratio is the fleet forecast's "
                           f"operating-expense ratio {_pct(opex_ratio)} (at most {_pct(ratio)})")
            ratio = opex_ratio
        else:
            reasons.append(f"the operating-expense ratio {_pct(opex_ratio)} is capped at the program's "
                           f"hedge ratio {_pct(ratio)}")
    if mandate_max_ratio is not None and ratio > mandate_max_ratio:
        reasons.append(f"hedge ratio {_pct(ratio)} capped at the mandate's maximum {_pct(mandate_max_ratio)}")
        ratio = mandate_max_ratio
    lot = program.lot
    target = _floor(ratio * forecast_qty, lot)
    held = hedged_quantity(program, period, holdings)
    reasons.append(f"target {_q(target)} {unit} = {_pct(ratio)} of forecast {_q(_round8(forecast_qty))} "
                   f"{unit} for {period}, rounded down to the lot {_q(lot)}; held {_q(held)} {unit}")
    position = {instrument_key(i): q for i, q in holdings.items() if i.underlying == program.code}
    builder = _Builder(name, program, period, forecast_qty, unit, retry, "" if rung == 1 else f"-m{rung}")
    hedge_legs, direction = _hedge_legs(program, period, spot)
    remaining = target - held
    covered = held
    for near, qty in near_futures(program, period, holdings, today) if rung == 1 else ():
        roll_qty = min(qty, max(remaining, Decimal(0)))
        tag = near.expiry.strftime("%Y%m%d")
        if roll_qty > 0:
            builder.add(f"roll-{tag}", [Leg(near, Side.BUY), hedge_legs[0]], Direction.SELL, roll_qty,
                        f"roll {_q(roll_qty)} {unit}: buy back {instrument_key(near)} (expires "
                        f"{near.expiry.isoformat()}, before the end of the hedge for {period}) and sell "
                        f"{instrument_key(hedge_legs[0].instrument)}", hedged=covered)
            remaining -= roll_qty
            covered += roll_qty
        if qty > roll_qty:
            builder.add(f"unwind-{tag}", [Leg(near, Side.BUY)], Direction.BUY, qty - roll_qty,
                        f"buy back {_q(qty - roll_qty)} {unit} of {instrument_key(near)}: more than the "
                        f"target needs", hedged=None)
    if not only_rolls:
        step = _floor(remaining, lot) if remaining > 0 else Decimal(0)
        if step > 0:
            builder.add("hedge", hedge_legs, direction, step,
                        f"new hedge of {_q(step)} {unit} closes the gap to the target", hedged=covered,
                        limit=True)
        elif remaining > 0:
            reasons.append(f"gap {_q(remaining)} {unit} is below the lot {_q(lot)}")
        elif remaining < 0:
            over = -remaining
            if strategy.is_option:
                reasons.append(f"over-hedged by {_q(over)} {unit}; options are not reduced automatically")
            else:
                reduce_qty = min(_ceil(over, lot), held)
                leg = hedge_legs[0]
                builder.add("reduce", [Leg(leg.instrument, leg.side.opposite)],
                            Direction(leg.side.opposite.value), reduce_qty,
                            f"over-hedged by {_q(over)} {unit} (forecast fell): buy back {_q(reduce_qty)}"
                            if strategy is not Strategy.NDF_LONG else
                            f"over-hedged by {_q(over)} {unit}: sell back {_q(reduce_qty)}", hedged=None)
    elif strategy is not Strategy.FUTURE:
        reasons.append(f"a {strategy.value} program has nothing to roll")
    if strategy is Strategy.PERPETUAL:
        reasons.append("a perpetual has no expiry: one short position hedges every period; its "
                       "funding accrues (rfq_engine.hedging.funding)")
    rfqs = tuple(builder.rfqs)
    if not rfqs and only_rolls and strategy is Strategy.FUTURE:
        reasons.append("nothing to roll: no short future expires before the period's contract")
    elif not rfqs and remaining == 0:
        reasons.append("nothing to do: the period is hedged to its target")
    planned = {r.client_rfq_id for r in rfqs}
    waiting = tuple(rfq_id for rfq_id, cid in open_rfqs if cid not in planned)
    if waiting:
        reasons.append(f"waiting: RFQ(s) {', '.join(waiting)} of this program are still open; their "
                       "fills would change the position")
        rfqs = ()
    return Plan(name, period, strategy, forecast, forecast_qty, unit, spot, ratio, target, held, position,
                rfqs, tuple(reasons), waiting)


def _pct(value: Decimal) -> str:
    return f"{decimal_str(value * 100)}%"


def _round8(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.00000001"))
