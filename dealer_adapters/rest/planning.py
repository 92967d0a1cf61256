"""An ``rfq.new`` as the desk's quote requests, and the way back to the engine's prices (pure).

The engine's orientation (``rfq_engine/domain/rfq.py``): ``bid`` is what the dealer pays
when the requester sells the package, ``ask`` what the requester pays when buying, net over
the legs; a leg's ``side`` is the requester's side when the package trades in the RFQ's
direction (for ``two_way``: as written for buying).

A desk quotes the client's ``side`` (``buy``: it answers an ``ask``; ``sell``: a ``bid``;
``two_way``: both):

- **One instrument** (a single-leg RFQ, ratio 1): the request names the instrument and the
  requester's side *on the instrument* for each package side wanted. When the leg is written
  against the package's side (a sell RFQ whose one leg buys), the package price is the
  instrument price negated (``sign = -1``); usually ``sign = +1`` and the prices are equal.
- **A package** (``quotes_packages = true``): the request lists the legs with the requester's
  side on each for the package side asked, and the desk's price is the package's net price,
  already in the engine's orientation.
- **Two-way**: with ``two_way = "per_side"`` one request per side (run concurrently);
  with ``"single_call"`` one request with side ``two_way`` (legs written for buying).

Each package side maps to a ``SideMap``: which request answers it, which price field of
the answer, the client's side in the order, and the sign. An RFQ the desk cannot be asked
for (an unmapped instrument, a package to a desk that does not quote packages, a ratio
other than 1 on a single instrument) gets a decline reason instead of a plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dealer_adapters.rest.config import RestDealerConfig, instrument_key
from rfq_engine.domain import Direction, Leg, QuoteSide, RfqNew, Side, decimal_str, format_ts

__all__ = ["PlannedRequest", "QuotePlan", "SideMap", "client_side", "plan_quote"]


@dataclass(frozen=True, slots=True)
class SideMap:
    """How one package side is asked for and traded at the desk."""

    package_side: QuoteSide
    order_side: Side
    """The client's side in the order (on the instrument, or on the package)."""
    price_field: str
    """``bid`` or ``ask``: the field of the desk's answer that prices this side."""
    sign: int
    """Engine price = sign * desk price (and desk price = sign * engine price)."""

    def to_engine(self, desk_price: Decimal) -> Decimal:
        return desk_price if self.sign > 0 else -desk_price


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One ``POST /v1/quotes``: its body, and the package side(s) its answer prices."""

    body: dict[str, Any]
    sides: tuple[SideMap, ...]

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(side.price_field for side in self.sides)


@dataclass(frozen=True, slots=True)
class QuotePlan:
    requests: tuple[PlannedRequest, ...]


def client_side(package_side: QuoteSide) -> Side:
    """The requester's side on the package that a price side serves (bid: sells)."""
    return Side.SELL if package_side is QuoteSide.BID else Side.BUY


def _price_field(side: Side) -> str:
    return "ask" if side is Side.BUY else "bid"


def plan_quote(config: RestDealerConfig, rfq: RfqNew) -> QuotePlan | str:
    """The desk requests for ``rfq``, or the reason the desk cannot be asked (a decline)."""
    if len(rfq.legs) > 1 and not config.quotes_packages:
        return "multi-leg package: this desk quotes single instruments only (quotes_packages = false)"
    names: list[str] = []
    for leg in rfq.legs:
        name = config.desk_name(leg.instrument)
        if name is None:
            return f"instrument not quoted by this desk: {instrument_key(leg.instrument)}"
        names.append(name)
    if len(rfq.legs) == 1 and rfq.legs[0].ratio != 1:
        return f"leg ratio {decimal_str(rfq.legs[0].ratio)}: a single instrument is quoted at ratio 1 only"
    written = Side.SELL if rfq.direction is Direction.SELL else Side.BUY
    wanted = {
        Direction.SELL: (QuoteSide.BID,),
        Direction.BUY: (QuoteSide.ASK,),
        Direction.TWO_WAY: (QuoteSide.BID, QuoteSide.ASK),
    }[rfq.direction]
    base: dict[str, Any] = {
        "quantity": decimal_str(rfq.quantity),
        "quantity_unit": rfq.quantity_unit,
        "allow_partial": rfq.allow_partial,
        "respond_by": format_ts(rfq.deadline),
        "close_policy": rfq.close_policy,
    }

    def leg_side(leg: Leg, package_side: Side) -> Side:
        return leg.side if package_side is written else leg.side.opposite

    def side_map(package_side: QuoteSide) -> SideMap:
        wants = client_side(package_side)
        if len(rfq.legs) == 1:
            on_instrument = leg_side(rfq.legs[0], wants)
            return SideMap(package_side, on_instrument, _price_field(on_instrument),
                           1 if on_instrument is wants else -1)
        return SideMap(package_side, wants, _price_field(wants), 1)

    def body(package_side: Side, side: str, client_rfq_id: str) -> dict[str, Any]:
        shape: dict[str, Any] = {"client_rfq_id": client_rfq_id, "side": side}
        if len(rfq.legs) == 1:
            shape["instrument"] = names[0]
        else:
            shape["legs"] = [
                {"instrument": name, "side": leg_side(leg, package_side).value,
                 "ratio": decimal_str(leg.ratio)}
                for leg, name in zip(rfq.legs, names, strict=True)
            ]
        return {**shape, **base}

    if rfq.direction is Direction.TWO_WAY and config.two_way == "single_call":
        # One request: the legs as written (for buying); the desk answers both sides.
        both = tuple(side_map(s) for s in wanted)
        return QuotePlan((PlannedRequest(body(Side.BUY, "two_way", rfq.rfq_id), both),))
    requests = []
    for package_side in wanted:
        mapping = side_map(package_side)
        suffix = "" if len(wanted) == 1 else f".{package_side.value}"
        requests.append(PlannedRequest(
            body(client_side(package_side), mapping.order_side.value, rfq.rfq_id + suffix), (mapping,)))
    return QuotePlan(tuple(requests))
