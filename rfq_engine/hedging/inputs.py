"""Operator inputs, audited: the collateral posted and the production realized.

A treasurer posts collateral with a desk or at a venue and learns a month's real production;
both are typed audit events appended to the hash chain (``collateral.posted``,
``production.realized``), never edited: a correction is a later event, and the latest one
counts.

- **Collateral posted** (``CollateralPosted``): a dealer with a ``[collateral.<dealer>]``
  agreement (``account`` ``desk``) or a ``[risk.venues.<dealer>]`` account (``venue``), and the
  amounts *now posted in total* by currency (a currency left out is none posted). The latest
  event per dealer replaces the config's ``posted`` (a desk) or ``collateral`` (a venue: the
  amount in the position's margin currency, the coin for an inverse contract, USD for a
  linear one; a position whose currency the event does not name keeps the config's figure).
- **Production realized** (``ProductionRealized``): a program, a period ``YYYY-MM`` and the
  quantity in the forecast's unit (the program's coin, or PH/s for an NDF program).

``collateral_event`` and ``production_event`` validate an input (a ``ValidationError``
naming the field) and build its event; ``latest_inputs`` gives the latest of each, with when
and by whom, for the reports' ``source`` columns (pure: ``records.load_inputs`` reads the
events from the store).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rfq_engine.domain.errors import ValidationError
from rfq_engine.domain.events import AnyEvent, CollateralPosted, ProductionRealized, UnknownEvent
from rfq_engine.domain.values import ENTRY_BOUNDS, decimal_str, format_ts, parse_decimal
from rfq_engine.hedging.forecast import Period
from rfq_engine.hedging.margin import CollateralAgreement

__all__ = ["MAX_NOTE", "OperatorInputs", "Posted", "Realized", "collateral_event", "collateral_source",
           "latest_inputs", "production_event", "production_unit"]

MAX_NOTE = 1000
MAX_CURRENCIES = 8
_COIN = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


@dataclass(frozen=True, slots=True)
class Posted:
    """The latest ``collateral.posted`` of one dealer."""

    dealer: str
    account: str
    amounts: Mapping[str, Decimal]
    at: datetime
    by: str
    seq: int
    note: str = ""

    def source(self) -> dict[str, Any]:
        return {"collateral_source": "posted", "posted_at": format_ts(self.at), "posted_by": self.by,
                "posted_seq": self.seq}


@dataclass(frozen=True, slots=True)
class Realized:
    """The latest ``production.realized`` of one program and period."""

    program: str
    period: str
    quantity: Decimal
    unit: str
    at: datetime
    by: str
    seq: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"quantity": decimal_str(self.quantity), "unit": self.unit, "recorded_at": format_ts(self.at),
                "recorded_by": self.by, "seq": self.seq, "note": self.note}


@dataclass(frozen=True, slots=True)
class OperatorInputs:
    collateral: Mapping[str, Posted] = field(default_factory=dict)
    production: Mapping[tuple[str, str], Realized] = field(default_factory=dict)

    def realized(self, program: str) -> dict[str, Realized]:
        """One program's realized production by period."""
        return {period: r for (name, period), r in self.production.items() if name == program}


def collateral_source(posted: Posted | None) -> dict[str, Any]:
    """The report row's columns saying where its collateral figure came from."""
    if posted is not None:
        return posted.source()
    return {"collateral_source": "config", "posted_at": None, "posted_by": None, "posted_seq": None}


def latest_inputs(events: Iterable[tuple[int, datetime, AnyEvent | UnknownEvent]]) -> OperatorInputs:
    """The latest input of each dealer and each (program, period) of ``(seq, ts, event)``,
    oldest first."""
    collateral: dict[str, Posted] = {}
    production: dict[tuple[str, str], Realized] = {}
    for seq, ts, event in events:
        if isinstance(event, CollateralPosted):
            amounts = {str(k): Decimal(str(v)) for k, v in dict(event.amounts or {}).items()}
            collateral[event.dealer] = Posted(event.dealer, event.account, amounts, ts,
                                              event.posted_by, seq, event.note)
        elif isinstance(event, ProductionRealized):
            production[(event.program, event.period)] = Realized(
                event.program, event.period, event.quantity, event.unit, ts, event.recorded_by, seq,
                event.note)
    return OperatorInputs(collateral, production)


def _note(note: object) -> str:
    if not isinstance(note, str):
        raise ValidationError("note", "must be a string")
    if len(note) > MAX_NOTE:
        raise ValidationError("note", f"at most {MAX_NOTE} characters")
    return note


def _key(key: str | None) -> str | None:
    if key is not None and (not key.strip() or len(key) > 200):
        raise ValidationError("Idempotency-Key", "must be 1..200 characters")
    return key


def _amount(value: object, where: str) -> Decimal:
    amount = parse_decimal(value, where, ENTRY_BOUNDS)
    if amount < 0:
        raise ValidationError(where, f"an amount posted is >= 0, got {decimal_str(amount)}")
    return amount


def collateral_event(dealer: object, amounts: object, *, agreements: Mapping[str, CollateralAgreement],
                     venues: Mapping[str, Any], by: str, note: object = "",
                     idempotency_key: str | None = None) -> CollateralPosted:
    """The ``collateral.posted`` of an operator's input, validated: the dealer has an agreement
    or a venue account; each currency is eligible with the desk (a venue: USD or a coin code)."""
    if not isinstance(dealer, str) or (dealer not in agreements and dealer not in venues):
        known = ", ".join(sorted({*agreements, *venues})) or "none"
        raise ValidationError("dealer", f"no [collateral.<dealer>] agreement or [risk.venues.<dealer>] "
                              f"account for {str(dealer)[:64]!r} (configured: {known})")
    if not isinstance(amounts, Mapping) or not amounts:
        raise ValidationError("amounts", "name the amount posted per currency, like {\"USD\": \"63000\"}")
    if len(amounts) > MAX_CURRENCIES:
        raise ValidationError("amounts", f"at most {MAX_CURRENCIES} currencies")
    out: dict[str, str] = {}
    for raw, value in amounts.items():
        currency = str(raw).strip().upper()
        where = f"amounts.{currency[:16]}"
        if dealer in agreements:
            eligible = agreements[dealer].eligible
            if currency not in eligible:
                raise ValidationError(where, f"not eligible collateral with {dealer} (eligible: "
                                      f"{', '.join(sorted(eligible))})")
        elif not _COIN.match(currency):
            raise ValidationError(where, "a currency code like USD or BTC")
        if currency in out:
            raise ValidationError(where, "named twice")
        out[currency] = decimal_str(_amount(value, where))
    return CollateralPosted(dealer=dealer, account="desk" if dealer in agreements else "venue",
                            amounts=dict(sorted(out.items())), posted_by=by, note=_note(note),
                            idempotency_key=_key(idempotency_key))


def production_unit(program: Any) -> str:
    """The unit of a program's forecast: PH/s for an NDF program, else its coin."""
    return "PH/s" if program.strategy.is_ndf else str(program.code)


def production_event(program: object, period: object, quantity: object, *, programs: Mapping[str, Any],
                     by: str, note: object = "", idempotency_key: str | None = None) -> ProductionRealized:
    """The ``production.realized`` of an operator's input, validated: a configured program, a
    period ``YYYY-MM``, a quantity >= 0 in the program's forecast unit."""
    if not isinstance(program, str) or program not in programs:
        known = ", ".join(sorted(programs)) or "none"
        raise ValidationError("program", f"no such program {str(program)[:64]!r} (configured: {known})")
    if not isinstance(period, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}", period):
        raise ValidationError("period", "a month, YYYY-MM")
    month = str(Period.parse(period))
    value = parse_decimal(quantity, "quantity", ENTRY_BOUNDS)
    if value < 0:
        raise ValidationError("quantity", f"production is >= 0, got {decimal_str(value)}")
    return ProductionRealized(program=program, period=month, quantity=value,
                              unit=production_unit(programs[program]), recorded_by=by, note=_note(note),
                              idempotency_key=_key(idempotency_key))
