"""The RFQ flow in FIX 4.4 messages, and back (pure functions; ``docs/dealers-fix.md``).

Prices: the engine's ``bid`` is what the dealer pays when the requester sells the package,
``ask`` what the requester pays when buying. A single-instrument RFQ asks the desk for the
symbol; when its one leg is written against the package's side (a sell RFQ whose leg buys),
the package price is the symbol's price negated and the sides swap (``sign = -1``). A
package (several legs, ``quotes_packages``) is one QuoteRequest with one ``NoRelatedSym``
group per leg, each with the requester's side on that leg, and the desk's ``BidPx`` /
``OfferPx`` are the package's net prices, already in the engine's orientation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dealer_adapters.fix.codec import FixMessage, fix_decimal, fix_time
from dealer_adapters.fix.config import FixDealerConfig, instrument_key
from dealer_adapters.fix.journal import AwardIntent
from rfq_engine.domain import Direction, QuoteSide, RfqNew, Side, decimal_str

__all__ = [
    "FILLED",
    "QUOTE_REQUEST_REJECT_REASONS",
    "REJECTED",
    "UNKNOWN_ORDER",
    "ExecAnswer",
    "QuotePlan",
    "SideMap",
    "award_message",
    "loser_message",
    "plan_quote",
    "read_execution",
    "read_quote_prices",
    "status_request",
]

FILLED = "2"
REJECTED = frozenset({"8", "4", "C"})
"""OrdStatus rejected, canceled (a fill-or-kill not filled), expired: nothing was executed."""
UNKNOWN_ORDER = "5"
"""``OrdRejReason(103)`` 5: the desk has no such order (an answer to OrderStatusRequest)."""

QUOTE_REQUEST_REJECT_REASONS = {
    "1": "unknown symbol", "2": "exchange closed", "3": "quote request exceeds limit",
    "4": "too late to enter", "5": "invalid price", "6": "not authorized to request quote",
    "7": "no match for inquiry", "8": "no market for instrument", "9": "no inventory",
    "10": "pass", "99": "other",
}
_FIX_SIDE = {Side.BUY: "1", Side.SELL: "2"}


@dataclass(frozen=True, slots=True)
class SideMap:
    """How one package side is priced and awarded at the desk."""

    fix_side: str
    """``Side(54)`` of the award: the requester's side on the symbol (or the package)."""
    price_tag: int
    """132 ``BidPx`` or 133 ``OfferPx``: the quote's field that prices this side."""
    sign: int


@dataclass(frozen=True, slots=True)
class QuotePlan:
    quote_req_id: str
    body: list[tuple[int, str]]
    symbol: str
    """The symbol awards name (the package symbol for a package)."""
    legs: tuple[tuple[str, str, str], ...]
    """Per leg: symbol, ``LegSide(624)``, ``LegRatioQty(623)`` (a package's award lists them)."""
    sides: dict[QuoteSide, SideMap]


@dataclass(frozen=True, slots=True)
class ExecAnswer:
    """What an ExecutionReport says about one award."""

    client_id: str
    final: bool
    filled: bool = False
    price: Decimal | None = None
    quantity: Decimal | None = None
    order_id: str = ""
    reason: str = ""
    unknown_order: bool = False
    status_req_id: str = ""


def _requester_side(package_side: QuoteSide) -> Side:
    return Side.SELL if package_side is QuoteSide.BID else Side.BUY


def plan_quote(config: FixDealerConfig, rfq: RfqNew, quote_req_id: str, now: datetime) -> QuotePlan | str:
    """The QuoteRequest for ``rfq``, or why the desk cannot be asked (a decline reason)."""
    if rfq.quantity_unit.lower() not in {u.lower() for u in config.units}:
        return f"unit {rfq.quantity_unit} not traded (the desk's OrderQty is in {', '.join(config.units)})"
    package = len(rfq.legs) > 1
    if package and not config.quotes_packages:
        return "multi-leg package: this desk quotes single instruments only (quotes_packages = false)"
    if package and config.award_style == "new_order_single":
        return "multi-leg package: a NewOrderSingle trades one symbol (award_style = new_order_single)"
    symbols: list[str] = []
    for leg in rfq.legs:
        symbol = config.symbol(leg.instrument)
        if symbol is None:
            return f"instrument not quoted by this desk: {instrument_key(leg.instrument)}"
        symbols.append(symbol)
    if not package and rfq.legs[0].ratio != 1:
        return f"leg ratio {decimal_str(rfq.legs[0].ratio)}: a single instrument is quoted at ratio 1 only"
    written = Side.SELL if rfq.direction is Direction.SELL else Side.BUY
    wanted = {Direction.SELL: (QuoteSide.BID,), Direction.BUY: (QuoteSide.ASK,),
              Direction.TWO_WAY: (QuoteSide.BID, QuoteSide.ASK)}[rfq.direction]
    sides: dict[QuoteSide, SideMap] = {}
    for package_side in wanted:
        wants = _requester_side(package_side)
        if package:
            sides[package_side] = SideMap(_FIX_SIDE[wants], 132 if package_side is QuoteSide.BID else 133, 1)
            continue
        leg = rfq.legs[0]
        on_symbol = leg.side if wants is written else leg.side.opposite
        sides[package_side] = SideMap(_FIX_SIDE[on_symbol], 133 if on_symbol is Side.BUY else 132,
                                      1 if on_symbol is wants else -1)
    one_way = rfq.direction is not Direction.TWO_WAY
    body: list[tuple[int, str]] = [(131, quote_req_id), (146, str(len(rfq.legs)))]
    for leg, symbol in zip(rfq.legs, symbols, strict=True):
        body += [(55, symbol), (303, "2"), (537, "1")]
        if one_way or package:
            body.append((54, _FIX_SIDE[leg.side]))
        body += [(854, "0"), (38, decimal_str(rfq.quantity * (leg.ratio if package else 1)))]
        if config.account:
            body.append((1, config.account))
        body += [(126, fix_time(rfq.deadline)), (60, fix_time(now))]
    legs = tuple((symbol, _FIX_SIDE[leg.side], decimal_str(leg.ratio))
                 for leg, symbol in zip(rfq.legs, symbols, strict=True))
    return QuotePlan(quote_req_id, body, config.package_symbol if package else symbols[0], legs, sides)


def read_quote_prices(msg: FixMessage, plan: QuotePlan) -> tuple[dict[QuoteSide, Decimal], Decimal]:
    """The engine's prices per package side, and the quantity, of a ``Quote(S)``; raises
    ``ValidationError`` naming the field when one the plan needs is missing or malformed."""
    prices: dict[QuoteSide, Decimal] = {}
    for package_side, side in plan.sides.items():
        name = "BidPx" if side.price_tag == 132 else "OfferPx"
        price = fix_decimal(msg.get(side.price_tag), name, side.price_tag)
        prices[package_side] = price if side.sign > 0 else -price
    sizes = [fix_decimal(msg.get(tag), name, tag) for tag, name in ((38, "OrderQty"), (134, "BidSize"),
                                                                      (135, "OfferSize"))
             if msg.get(tag) is not None]
    if not sizes:
        fix_decimal(None, "OrderQty", 38)
    return prices, min(sizes)


def award_message(config: FixDealerConfig, intent: AwardIntent,
                  legs: tuple[tuple[str, str, str], ...], now: datetime) -> tuple[str, list[tuple[int, str]]]:
    """The award as ``QuoteResponse(AJ)`` hit/lift or a previously-quoted FOK ``NewOrderSingle(D)``."""
    account = [(1, config.account)] if config.account else []
    if intent.style == "new_order_single":
        return "D", [(11, intent.client_id), *account, (55, intent.symbol), (54, intent.side),
                     (60, fix_time(now)), (38, decimal_str(intent.quantity)), (40, "D"),
                     (44, decimal_str(intent.price)), (59, "4"), (117, intent.desk_quote_id),
                     (126, fix_time(intent.confirm_by))]
    body: list[tuple[int, str]] = [(693, intent.client_id), (117, intent.desk_quote_id), (694, "1"),
                                   (11, intent.client_id), (55, intent.symbol), (54, intent.side),
                                   (38, decimal_str(intent.quantity)), *account]
    if len(legs) > 1:
        body.append((555, str(len(legs))))
        for symbol, side, ratio in legs:
            body += [(600, symbol), (623, ratio), (624, side)]
    body += [(62, fix_time(intent.confirm_by)), (60, fix_time(now)), (44, decimal_str(intent.price))]
    return "AJ", body


def loser_message(config: FixDealerConfig, response_id: str, desk_quote_id: str, symbol: str,
                  now: datetime) -> list[tuple[int, str]]:
    """``QuoteResponse(AJ)`` cover (4) or done away (5) to a desk whose quote lost."""
    kind = "4" if config.tell_losers == "cover" else "5"
    return [(693, response_id), (117, desk_quote_id), (694, kind), (55, symbol), (60, fix_time(now))]


def status_request(intent: AwardIntent, status_req_id: str) -> list[tuple[int, str]]:
    """``OrderStatusRequest(H)`` for the award's ``ClOrdID``."""
    return [(11, intent.client_id), (790, status_req_id), (55, intent.symbol), (54, intent.side)]


def read_execution(msg: FixMessage) -> ExecAnswer:
    """An ``ExecutionReport(8)``: final (filled / rejected) or not, or the desk's "unknown
    order"; raises ``ValidationError`` naming the field for a fill it cannot read."""
    client_id = msg.require(11, "ClOrdID")
    status = msg.require(39, "OrdStatus")
    status_req = msg.get(790) or ""
    text = msg.get(58) or ""
    if status == FILLED:
        price_text = msg.get(6) if msg.get(6) not in (None, "0") else msg.get(31)
        price = fix_decimal(price_text, "AvgPx", 6)
        quantity = fix_decimal(msg.get(14), "CumQty", 14)
        return ExecAnswer(client_id, True, True, price, quantity, msg.require(37, "OrderID"),
                          status_req_id=status_req)
    if status in REJECTED:
        rej = msg.get(103)
        if rej == UNKNOWN_ORDER and msg.get(150) == "I":
            return ExecAnswer(client_id, False, unknown_order=True, reason=text or "unknown order",
                              status_req_id=status_req)
        named = {"4": "canceled (fill or kill, not filled)", "C": "expired"}.get(status, "rejected")
        reason = f"{named}{f' (OrdRejReason {rej})' if rej else ''}{f': {text}' if text else ''}"
        return ExecAnswer(client_id, True, False, order_id=msg.get(37) or "", reason=reason,
                          status_req_id=status_req)
    return ExecAnswer(client_id, False, reason=f"OrdStatus {status}", order_id=msg.get(37) or "",
                      status_req_id=status_req)
