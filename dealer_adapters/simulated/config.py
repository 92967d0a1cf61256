"""Settings of one simulated dealer desk (one ``[dealers.simulated]`` TOML table).

The simulated dealer plays a remote OTC desk, so these are the desk's own
parameters: how fast it answers, how wide it quotes, how often it declines,
stays silent or backs out on last look. Every number that can be a price is a
decimal (``DecimalStr``: a quoted string or an int, never a float); rates and
latencies are plain numbers (probabilities and milliseconds are not money).

A config error names the field (pydantic's location), e.g.
``decline_rate: Input should be less than or equal to 1``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from rfq_engine.configtypes import STRICT, DecimalStr, PositiveDecimalStr
from rfq_engine.domain import NDF_UNIT, InstrumentKind

__all__ = ["DEFAULT_UNITS", "Rate", "SimulatedDealerConfig"]

Rate = Annotated[float, Field(ge=0.0, le=1.0, strict=True)]
"""A probability in [0, 1]; strict so ``true`` or ``"0.1"`` in TOML is an error, not a guess."""

Millis = Annotated[float, Field(ge=0.0, le=600_000.0, strict=True)]

DEFAULT_UNITS: tuple[str, ...] = ("BTC", NDF_UNIT)
"""What the quoting model prices per unit: BTC (spot, perpetual, future, option on BTC) and
PH/s/day (a hashprice NDF, ``rfq_engine.domain.rfq.NDF_UNIT``)."""


class SimulatedDealerConfig(BaseModel):
    """One simulated desk's quoting model (see ``dealer_adapters.simulated.model``).

    Prices: ``bid = value - half_spread + skew`` and ``ask = value + half_spread - skew``,
    where ``value`` is ``pricing.package_value`` in the RFQ's orientation and
    ``half_spread``/``skew`` are bps of ``pricing.reference_underlying_price`` (the spot of
    the package's main underlying, or the hashprice for an NDF), the same base the engine
    measures quote tolerance in. Using the spot rather than the net premium gives a collar
    whose premium nets to about zero a sensible width.
    """

    model_config = STRICT

    latency_ms: Millis = 150.0
    """Mean time from receiving an RFQ to the quote (or decline) arriving."""
    latency_jitter_ms: Millis = 50.0
    """Latency is drawn uniformly in ``latency_ms ± latency_jitter_ms`` (clamped at 0)."""
    spread_bps: DecimalStr = Decimal(20)
    """Full bid-ask spread, in basis points of the reference (main underlying's spot) price."""
    skew_bps: DecimalStr = Decimal(0)
    """Dealer-specific shift, bps of the reference price; positive is generous to the requester."""
    tick_size: PositiveDecimalStr = Decimal("0.01")
    """Quotes are rounded to this tick: bid down, ask up (never tighter than the model)."""
    max_quantity: PositiveDecimalStr | None = None
    """Largest size quoted; above it the desk quotes partial (``allow_partial``) or declines."""
    decline_rate: Rate = 0.0
    last_look_reject_rate: Rate = 0.0
    silence_rate: Rate = 0.0
    """Chance that the desk never answers an RFQ at all (no quote, no decline)."""
    quote_validity_ms: int = Field(default=3000, ge=1, le=600_000, strict=True)
    confirm_latency_ms: Millis = 50.0
    """From booking an award to its ``execution.confirm`` / ``execution.reject`` arriving."""
    book_latency_ms: Millis = 0.0
    """How long booking an award takes at the desk (before the ledger write). Set it above the
    engine's ``send_timeout_ms`` to model a dealer slower than the engine's patience: the
    send times out, the booking goes on, and a lookup meanwhile says UNKNOWN."""
    lose_confirm_rate: Rate = 0.0
    """Chance that the ``execution.confirm`` of a booked trade is lost on the way: the desk
    executed, the engine never hears it (``query_execution`` still says CONFIRMED)."""
    instruments: tuple[InstrumentKind, ...] = Field(default=tuple(InstrumentKind), min_length=1)
    """Instrument kinds the desk quotes; a package with any other leg is declined."""
    units: tuple[str, ...] = Field(default=DEFAULT_UNITS, min_length=1)
    """Quantity units the desk trades (``RfqNew.quantity_unit``, compared without case): BTC
    for the BTC instruments the model prices per coin, PH/s/day for hashprice NDFs. An RFQ in
    another unit is declined (``unit X not traded``) and an award in one is rejected."""
    seed: int | None = Field(default=None, strict=True)
    """Seeds the desk's random draws (reproducible runs); None draws a fresh seed."""
    ledger_path: Path | None = None
    """JSONL file of the desk's booked executions, so it remembers trades across restarts."""
    online: bool = Field(default=True, strict=True)

    @model_validator(mode="after")
    def _check(self) -> SimulatedDealerConfig:
        if self.spread_bps < 0:
            raise ValueError("spread_bps: must not be negative")
        if self.skew_bps * 2 > self.spread_bps:
            raise ValueError("skew_bps: must be at most half of spread_bps, or a two-way quote would cross")
        if len(set(self.instruments)) != len(self.instruments):
            raise ValueError("instruments: lists a kind twice")
        folded = [u.strip().casefold() for u in self.units]
        if not all(folded):
            raise ValueError("units: a unit must be a non-empty string")
        if len(set(folded)) != len(folded):
            raise ValueError("units: lists a unit twice")
        return self

    def trades_unit(self, unit: str) -> bool:
        """Whether ``unit`` is one of ``units`` (case and surrounding blanks ignored)."""
        wanted = unit.strip().casefold()
        return any(u.strip().casefold() == wanted for u in self.units)
