"""What the three venue routes (book, convert, OKX block RFQ) share.

- ``Route``: how one dealer prices an RFQ and executes an award at its venue;
- ``QuotePlan`` / ``SentQuote`` / ``SideQuote``: a quote as priced and as remembered for
  the award (each side keeps what its execution needs: the book fill, the venue's quote id);
- ``Outcome``: how an execution ended, the same shape in the journal and on the wire;
- ``classify``: ccxt's exception hierarchy mapped to what the adapter does about it. It
  reads the class names along the exception's MRO, so this module never imports ccxt
  (importing it costs half a second and ~100 MB: only a configured dealer pays that);
- ``placement_failed``: what a route's ``place`` does when its order call raised (the
  same for every route: re-raise a credentials error, a reject for a refusal, otherwise
  log, back off after a rate limit, and leave the call's fate unknown);
- ``client_id``: a deterministic client order id from an execution id;
- ``describe_error``: the shared ``dealer_adapters.common.describe_error``, re-exported.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from structlog.stdlib import BoundLogger

from dealer_adapters.common import describe_error
from rfq_engine.domain import Award, QuoteId, QuoteSide, RfqId, RfqNew, decimal_str
from rfq_engine.domain.errors import WireError
from rfq_engine.domain.premium import CoinPremium

__all__ = [
    "MIN_KEY_DIGEST",
    "DeclinePlan",
    "ErrorKind",
    "Outcome",
    "QuotePlan",
    "Route",
    "SentQuote",
    "SideQuote",
    "classify",
    "client_id",
    "describe_error",
    "placement_failed",
]


class ErrorKind(StrEnum):
    RETRYABLE = "retryable"
    """Network error or timeout: the call may or may not have reached the venue."""
    RATE_LIMIT = "rate_limit"
    """The venue throttled us: back off, then reconcile like a network error."""
    REJECTED = "rejected"
    """The venue refused the request (funds, order parameters, bad request): nothing happened."""
    AUTH = "auth"
    """Credentials refused: the dealer is marked down and an error is logged."""
    UNKNOWN = "unknown"
    """Any other venue error: treated as possibly placed, so reconciled."""


_REJECTED = frozenset({
    "InsufficientFunds", "InvalidOrder", "BadRequest", "BadSymbol", "ArgumentsRequired",
    "NotSupported", "OperationRejected", "MarketClosed", "AccountNotEnabled",
})


class AuthLostAfterSend(WireError):
    """Credentials were refused after an order call went out (reading the order back): the
    order may be at the venue, so its outcome is unknown, never a reject."""


def classify(exc: BaseException) -> ErrorKind:
    """What ``exc`` (a ccxt error, or a bare timeout/OS error) means for an order call."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "DuplicateOrderId" in names:  # an InvalidOrder to ccxt, but it says our order exists
        return ErrorKind.UNKNOWN
    if "AuthenticationError" in names:
        return ErrorKind.AUTH
    if names & {"RateLimitExceeded", "DDoSProtection"}:
        return ErrorKind.RATE_LIMIT
    if "OrderNotFound" in names:
        return ErrorKind.REJECTED
    if names & _REJECTED:
        return ErrorKind.REJECTED
    if "NetworkError" in names or isinstance(exc, TimeoutError | OSError):
        return ErrorKind.RETRYABLE
    return ErrorKind.UNKNOWN


async def placement_failed(exc: Exception, price: Decimal, refused: str, *, log: BoundLogger, event: str,
                           backoff_ms: int, **context: Any) -> Outcome | ErrorKind:
    """What an order-placing call that raised ``exc`` means, the same for every route's ``place``.

    Credentials refused (``ErrorKind.AUTH``): ``exc`` is raised again (the adapter marks the
    dealer down). A refusal (``REJECTED``: nothing happened at the venue): a reject
    ``Outcome`` at the awarded ``price`` saying ``"<refused>: <the error>"``. Anything else
    may have reached the venue: it is logged (``event``, with ``context``), a rate limit is
    followed by the ``backoff_ms`` back-off, and the kind is returned: the call's fate is
    unknown (``place`` returns None, or looks it up), and it is never sent again.
    """
    kind = classify(exc)
    if kind is ErrorKind.AUTH:
        raise exc
    if kind is ErrorKind.REJECTED:
        return Outcome.reject(price, f"{refused}: {describe_error(exc)}")
    log.warning(event, error=describe_error(exc), kind=kind.value, **context)
    if kind is ErrorKind.RATE_LIMIT:
        await asyncio.sleep(backoff_ms / 1000)
    return kind


_ALNUM = re.compile(r"[^A-Za-z0-9]")

MIN_KEY_DIGEST = 16
"""Hex digits of the execution id's digest a client order id keeps at least (64 bits).

A venue looks a timed-out order up by this key: two executions sharing one would let the
look-up find the other's order. With 16 digits a collision is expected only after some four
billion executions; with the 2 a 6-letter prefix left in 8 characters, after about 20.
"""


def client_id(execution_id: str, prefix: str, max_len: int) -> str:
    """A client order id derived from ``execution_id``: the same id for every retry and restart.

    ``prefix`` + the SHA-256 of the execution id in hex, cut to ``max_len``: only letters
    and digits (every venue's charset), starting with a letter (OKX's rule), at most 32-64
    characters. With the 8-character maximum prefix and a 32-character limit, 24 hex digits
    (96 bits) remain: collisions between awards are not a practical concern. A length that
    leaves fewer than ``MIN_KEY_DIGEST`` digits is a ``ValueError``.
    """
    clean = _ALNUM.sub("", prefix) or "r"
    if not clean[0].isalpha():
        clean = "r" + clean
    if max_len - len(clean) < MIN_KEY_DIGEST:
        raise ValueError(f"a client order id of {max_len} characters after the prefix {clean!r} keeps "
                         f"{max(max_len - len(clean), 0)} hex digits of the execution id's digest; at "
                         f"least {MIN_KEY_DIGEST} are needed, or two executions could share a key")
    digest = hashlib.sha256(execution_id.encode("utf-8")).hexdigest()
    return (clean + digest)[:max_len]


@dataclass(frozen=True, slots=True)
class SideQuote:
    """One side of a quote: the package price and what its execution needs (route-specific)."""

    side: QuoteSide
    price: Decimal
    quantity: Decimal
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QuotePlan:
    """A quote a route priced: one or two sides, a quantity (package units), a validity."""

    sides: tuple[SideQuote, ...]
    quantity: Decimal
    valid_until: datetime
    key: str = ""
    """Routes that poll (OKX RFQ) send a new quote only when this changes."""
    premium: CoinPremium | None = None
    """A premium in a coin, as the venue quoted it: sent as ``premium`` (the engine converts
    it, ``domain.premium``); the sides' prices are then in that coin."""


@dataclass(frozen=True, slots=True)
class DeclinePlan:
    reason: str


@dataclass(frozen=True, slots=True)
class SentQuote:
    """A quote as sent to the engine, kept until the RFQ closes so an award can find it."""

    rfq_id: RfqId
    quote_id: QuoteId
    plan: QuotePlan

    def side(self, side: QuoteSide) -> SideQuote | None:
        return next((s for s in self.plan.sides if s.side is side), None)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution ended. ``price`` is the awarded price the engine checks the confirm
    against; what the venue really did (average, fee, price improvement) is in ``details``."""

    confirmed: bool
    quantity: Decimal
    price: Decimal
    dealer_trade_id: str = ""
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def reject(cls, price: Decimal, reason: str, **details: Any) -> Outcome:
        """A rejected execution; ``price`` is the awarded price (kept for the record)."""
        return cls(False, Decimal(0), price, "", reason[:500], details)

    def to_record(self) -> dict[str, Any]:
        return {
            "confirmed": self.confirmed,
            "quantity": decimal_str(self.quantity),
            "price": decimal_str(self.price),
            "dealer_trade_id": self.dealer_trade_id,
            "reason": self.reason,
            "details": self.details,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Outcome:
        return cls(
            confirmed=bool(record["confirmed"]),
            quantity=Decimal(str(record["quantity"])),
            price=Decimal(str(record["price"])),
            dealer_trade_id=str(record.get("dealer_trade_id", "")),
            reason=str(record.get("reason", "")),
            details=dict(record.get("details") or {}),
        )


class Route(Protocol):
    """How one dealer prices and executes at its venue (book, convert or OKX block RFQ).

    ``price`` is called when the RFQ arrives and then every ``poll_interval_s`` until the
    RFQ's deadline (a new quote replaces the earlier one); returning None sends nothing
    this time. ``prepare`` runs the venue-side checks of an award (last look) and returns
    the intent to journal, or a reject reason; nothing has been sent when it returns.
    ``place`` makes the one order-placing call and returns the outcome, or None when the
    call's fate is unknown (the adapter then reconciles with ``lookup``, never re-sends).
    """

    poll_interval_s: float
    can_lookup: bool

    async def price(self, rfq: RfqNew) -> QuotePlan | DeclinePlan | None: ...

    async def prepare(
        self, award: Award, sent: SentQuote, rfq: RfqNew, client_id: str
    ) -> dict[str, Any] | str:
        ...

    async def place(self, intent: dict[str, Any]) -> Outcome | None: ...

    async def lookup(self, intent: dict[str, Any]) -> Outcome | None: ...

    async def closed(self, rfq_id: RfqId) -> None: ...
