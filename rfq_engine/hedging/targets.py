"""What a program hedges a period with, and how much of it it already holds (pure).

- The contract for period ``P`` expires in month ``P + tenor_months`` (``expiry_for``), so
  it stays alive through all of ``P``; with the default tenor of one month, December's
  hedge is the January future.
- A future program is *short* that future; a put program *long* that put; a collar program
  long the put (its sold call is paired with it); an NDF program short (``ndf_short``) or
  long (``ndf_long``) the NDF that starts on the first day of ``P`` for its days.
- The *hedged quantity* of a period is the protective position in those contracts: the
  short futures, the long puts of that expiry (any strike), the NDF on the hedging side. A
  ``future_call`` program counts its short futures (the calls ride on them); a
  ``perpetual`` program its short perpetual, the same position for every period.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal

from rfq_engine.domain.instruments import Future, HashpriceNdf, Instrument, Option, OptionType, Perpetual
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.program import ProgramConfig, Strategy, expiry_for

__all__ = ["hedge_expiry", "hedged_quantity", "is_target", "near_futures", "protective_sign"]


def hedge_expiry(program: ProgramConfig, period: Period) -> date:
    return expiry_for(period, program.tenor_months, program.expiry_rule)


def protective_sign(program: ProgramConfig) -> int:
    """+1 when the hedge is a long position (put, collar's put, NDF long), -1 when short."""
    return -1 if program.strategy in (Strategy.FUTURE, Strategy.FUTURE_CALL, Strategy.PERPETUAL,
                                      Strategy.NDF_SHORT) else 1


def is_target(program: ProgramConfig, period: Period, instrument: Instrument) -> bool:
    """Whether ``instrument`` is the contract that hedges ``period`` for this program."""
    if instrument.underlying != program.code or instrument.quote_ccy != program.quote_ccy:
        return False
    strategy = program.strategy
    if strategy in (Strategy.FUTURE, Strategy.FUTURE_CALL):
        return isinstance(instrument, Future) and instrument.expiry == hedge_expiry(program, period)
    if strategy is Strategy.PERPETUAL:
        return isinstance(instrument, Perpetual)
    if strategy.is_option:
        return (isinstance(instrument, Option) and instrument.option_type is OptionType.PUT
                and instrument.expiry == hedge_expiry(program, period))
    return (isinstance(instrument, HashpriceNdf) and instrument.start == period.start
            and instrument.days == period.days)


def hedged_quantity(program: ProgramConfig, period: Period,
                    holdings: Mapping[Instrument, Decimal]) -> Decimal:
    """The protective quantity held in the period's contracts (negative if on the wrong side)."""
    sign = protective_sign(program)
    return sum((qty * sign for instrument, qty in holdings.items() if is_target(program, period, instrument)),
               Decimal(0))


def near_futures(program: ProgramConfig, period: Period, holdings: Mapping[Instrument, Decimal],
                 today: date) -> list[tuple[Future, Decimal]]:
    """Short futures of the program's underlying that expire before the period's contract and
    have not expired (``expiry >= today``): what a roll buys back, earliest first."""
    if program.strategy is not Strategy.FUTURE:
        return []
    target = hedge_expiry(program, period)
    out = []
    for instrument, qty in holdings.items():
        if (isinstance(instrument, Future) and instrument.underlying == program.code
                and instrument.quote_ccy == program.quote_ccy and today <= instrument.expiry < target
                and qty < 0):
            out.append((instrument, -qty))
    return sorted(out, key=lambda item: item[0].expiry)
