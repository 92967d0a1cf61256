"""Hedge effectiveness tests (pure Decimal functions): critical terms, dollar offset, regression.

The hedged item is the designated share of the period's production; the hedge is the
program's position. Each test compares a change in the hedged item's value (``x``) with the
change in the hedge's value (``y``) over the same moves:

- **Critical terms**: the hedge and the item share the underlying, the quantity hedged does
  not exceed the item, and the hedge's last date is at or after the period's end (a BTC
  future for month P expires in P + tenor). Each term says ``match`` or why not.
- **Dollar offset** = ``-y / x`` over the period (cumulative changes): effective in
  [0.8, 1.25], the band of ASC 815 / IFRS 9 practice. Undefined when ``x`` is 0.
- **Regression** of ``y`` on ``x`` by ordinary least squares over a series of moves:
  ``slope = Sxy / Sxx``, ``intercept = mean(y) - slope x mean(x)``,
  ``R^2 = Sxy^2 / (Sxx x Syy)``, with ``Sxy = sum (x - mean x)(y - mean y)``. Effective when
  the slope is in [-1.25, -0.8] and ``R^2 >= 0.8``.

The series ``x = 1, 2, 3, 4, 5``, ``y = -1, -2, -3, -4, -6`` gives slope -1.2, intercept 0.4
and R^2 = 144/148 = 0.97297...: effective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.values import decimal_str

__all__ = [
    "OFFSET_BAND",
    "R_SQUARED_MIN",
    "Regression",
    "critical_terms",
    "dollar_offset",
    "offset_effective",
    "regression",
]

OFFSET_BAND = (Decimal("0.8"), Decimal("1.25"))
"""The dollar-offset ratio and the regression's slope (negated) must fall in this band."""
R_SQUARED_MIN = Decimal("0.8")

_WORK = Context(prec=50, rounding=ROUND_HALF_EVEN)
_OUT = Context(prec=28, rounding=ROUND_HALF_EVEN)


def _d(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(_OUT.plus(value))


def dollar_offset(hedge_change: Decimal, item_change: Decimal) -> Decimal | None:
    """``-hedge_change / item_change``; None when the item did not move."""
    if item_change == 0:
        return None
    with localcontext(_WORK):
        return _OUT.plus(-hedge_change / item_change)


def offset_effective(ratio: Decimal | None) -> bool | None:
    """Whether a dollar-offset ratio is in the band; None when it is undefined."""
    if ratio is None:
        return None
    return OFFSET_BAND[0] <= ratio <= OFFSET_BAND[1]


@dataclass(frozen=True, slots=True)
class Regression:
    """OLS of the hedge's value changes (y) on the hedged item's (x)."""

    n: int
    slope: Decimal | None
    intercept: Decimal | None
    r_squared: Decimal | None

    @property
    def effective(self) -> bool | None:
        if self.slope is None or self.r_squared is None:
            return None
        return (-OFFSET_BAND[1] <= self.slope <= -OFFSET_BAND[0]) and self.r_squared >= R_SQUARED_MIN

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "slope": _d(self.slope), "intercept": _d(self.intercept),
                "r_squared": _d(self.r_squared), "effective": self.effective}


def regression(xs: Sequence[Decimal], ys: Sequence[Decimal]) -> Regression:
    """Least squares of ``ys`` on ``xs`` (see the module docstring). At least two points of
    which ``xs`` are not all equal, or slope and R^2 are None. R^2 is 1 when ``ys`` are all
    equal to the fitted line (``Syy`` = 0 with a slope of 0 counts as None: nothing moved)."""
    if len(xs) != len(ys):
        raise ValidationError("regression", f"{len(xs)} item changes against {len(ys)} hedge changes")
    n = len(xs)
    if n < 2:
        return Regression(n, None, None, None)
    with localcontext(_WORK):
        mx = sum(xs, Decimal(0)) / n
        my = sum(ys, Decimal(0)) / n
        sxx = sum(((x - mx) ** 2 for x in xs), Decimal(0))
        syy = sum(((y - my) ** 2 for y in ys), Decimal(0))
        sxy = sum(((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)), Decimal(0))
        if sxx == 0:
            return Regression(n, None, None, None)
        slope = sxy / sxx
        intercept = my - slope * mx
        r2 = None if syy == 0 else sxy * sxy / (sxx * syy)
    return Regression(n, _OUT.plus(slope), _OUT.plus(intercept), None if r2 is None else _OUT.plus(r2))


def critical_terms(*, item_underlying: str, item_quantity: Decimal, period_end: str,
                   hedge_underlying: str | None, hedge_quantity: Decimal,
                   hedge_last_date: str | None) -> list[dict[str, Any]]:
    """The critical terms of item and hedge side by side, each with ``match`` and a note.
    Dates are ISO strings (compared as such)."""
    rows = []
    same = hedge_underlying is not None and hedge_underlying.upper() == item_underlying.upper()
    rows.append({"term": "underlying", "item": item_underlying, "hedge": hedge_underlying,
                 "match": same, "note": "" if same else "the hedge is on another underlying: basis risk"})
    within = abs(hedge_quantity) <= item_quantity
    rows.append({"term": "quantity", "item": _d(item_quantity), "hedge": _d(abs(hedge_quantity)),
                 "match": within, "note": "" if within else "over-hedged: more than the production"})
    covers = hedge_last_date is not None and hedge_last_date >= period_end
    rows.append({"term": "maturity", "item": period_end, "hedge": hedge_last_date, "match": covers,
                 "note": "" if covers else "the hedge ends before the period does"})
    return rows
