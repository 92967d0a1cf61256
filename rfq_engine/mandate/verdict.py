"""A rule's verdict, and how its numbers are written.

Compliance reads verdicts after the fact, in the audit log, without the code at hand:
so a reason always says *why* in words, with the numbers that decided it
("notional 12,000,000 USD exceeds the per-RFQ cap 10,000,000 USD"), on a pass as well
as on a failure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import (
    MAX_PREC,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Any, Final

__all__ = ["Verdict", "all_passed", "failures", "fmt_amount", "fmt_bps", "fmt_pct"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one rule: its name, whether it passed and why."""

    rule: str
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "passed": self.passed, "reason": self.reason}


def all_passed(verdicts: Iterable[Verdict]) -> bool:
    """True when every verdict passed (and trivially for none)."""
    return all(v.passed for v in verdicts)


def failures(verdicts: Iterable[Verdict]) -> list[Verdict]:
    """The verdicts that failed, in order."""
    return [v for v in verdicts if not v.passed]


# ``fmt_amount`` rounds with one fixed context, never the thread's (a library may change
# that: ccxt sets ROUND_HALF_UP): the default context's Emax, Emin and traps, half-even
# rounding, and a precision no quantize can exceed, so the rounded result is exact.
_ROUNDING: Final = Context(
    prec=MAX_PREC,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    capitals=1,
    clamp=0,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
_quantize: Final = _ROUNDING.quantize
_STEPS: Final = {places: Decimal((0, (1,), -places)) for places in range(19)}
"""``10**-places`` for the usual numbers of places (2 for money and bps, 8 for quantities)."""


def fmt_amount(value: Decimal, places: int = 2) -> str:
    """``12000000`` -> ``12,000,000``, ``1234.5678`` -> ``1,234.57``: rounded to ``places``
    (0 to 18; a ``ValueError`` otherwise), zeros cut. A value that is not a ``Decimal`` is a
    ``TypeError``."""
    step = _STEPS.get(places) if type(places) is int else None
    if step is None:
        raise ValueError(f"fmt_amount: places must be an int from 0 to 18, not {places!r}")
    if not isinstance(value, Decimal):
        raise TypeError(f"fmt_amount: a Decimal, not {type(value).__name__}")
    text = format(_quantize(Decimal(value), step), ",f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" or not text else text


def fmt_bps(value: Decimal) -> str:
    """A distance in basis points, to 0.01 bp."""
    return fmt_amount(value, 2)


def fmt_pct(ratio: Decimal) -> str:
    """A ratio as a percentage, to 0.01%: ``0.8`` -> ``80%``."""
    return f"{fmt_amount(ratio * 100, 2)}%"
