"""What every dealer adapter does the same way: plain functions, no base class.

- ``reachable``, ``check_startable``: the guards of ``send_*`` and ``start``;
- ``parse_inbound`` / ``parse_wire`` / ``rejected``: a protocol body to the domain message
  the engine gets, through the shared ``parse_body`` (so every kind hands over exactly
  what a remote desk's message would give), or to an ``InboundRejected`` with the reason;
- ``quote_body``, ``confirm_body``, ``reject_body``, ``status_body``: the wire bodies a
  dealer's answers are built as;
- ``NOT_SERVED``, ``not_served``: the policy and the lookup for a dealer id the adapter
  does not serve;
- ``describe_error``, ``track``, ``cancel_all``: a reason from an exception, and the
  background tasks an adapter owns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import structlog

from dealer_adapters.protocol import DealerUnavailable, ExecutionLookup, ExecutionState, LookupPolicy
from rfq_engine.domain import (
    DealerId,
    Inbound,
    InboundRejected,
    RfqId,
    ValidationError,
    decimal_str,
    format_ts,
    new_id,
    parse_body,
    utc_now,
)

__all__ = [
    "NOT_SERVED",
    "RAW_MAX",
    "cancel_all",
    "check_startable",
    "confirm_body",
    "describe_error",
    "not_served",
    "parse_inbound",
    "parse_wire",
    "quote_body",
    "reachable",
    "reject_body",
    "rejected",
    "status_body",
    "track",
]

_log = structlog.get_logger(__name__)

T = TypeVar("T")

RAW_MAX = 500
"""How much of an unreadable message is kept for the audit log."""

NOT_SERVED = LookupPolicy(key="none", can_query=False, not_found_proves_absent=False,
                          note="not served by this adapter")


# --- guards ----------------------------------------------------------------------------------


def reachable(dealers: Mapping[DealerId, T], dealer_id: DealerId, *, closed: bool, started: bool,
              offline: Callable[[T], str] | None = None) -> T:
    """The state of ``dealer_id`` when a message can be sent to it, else ``DealerUnavailable``
    saying why: not served by this adapter, adapter closed, adapter not started, or the
    reason ``offline(state)`` gives ("" when the dealer is online)."""
    state = dealers.get(dealer_id)
    if state is None:
        raise DealerUnavailable(dealer_id, "not served by this adapter")
    if closed:
        raise DealerUnavailable(dealer_id, "adapter closed")
    if not started:
        raise DealerUnavailable(dealer_id, "adapter not started")
    why = "" if offline is None else offline(state)
    if why:
        raise DealerUnavailable(dealer_id, why)
    return state


def check_startable(adapter: str, closed: bool) -> None:
    """``start`` after ``close`` is a ``RuntimeError``: an adapter is not reopened."""
    if closed:
        raise RuntimeError(f"{adapter} was closed; build a new one")


def not_served() -> ExecutionLookup:
    return ExecutionLookup(ExecutionState.UNKNOWN, reason="not served by this adapter")


# --- inbound messages ----------------------------------------------------------------------


def parse_wire(msg_type: str, body: dict[str, Any], dealer_id: DealerId, received_at: datetime) -> Inbound:
    """``body`` through the shared body parser, with a fresh ``msg_id`` (each message is new);
    raises ``ValidationError`` naming the field."""
    return parse_body(msg_type, body, dealer_id=dealer_id, msg_id=new_id(), received_at=received_at)


def parse_inbound(dealer_id: DealerId, msg_type: str, body: dict[str, Any]) -> Inbound:
    """``body`` as the engine gets it, received now; a body off the protocol (only a bug of the
    adapter produces one) becomes an ``InboundRejected`` with the reason, for the audit log."""
    msg_id, now = new_id(), utc_now()
    try:
        return parse_body(msg_type, body, dealer_id=dealer_id, msg_id=msg_id, received_at=now)
    except ValidationError as exc:
        rfq_id = body.get("rfq_id")
        return InboundRejected(dealer_id, str(exc), now, msg_id,
                               RfqId(rfq_id) if isinstance(rfq_id, str) else None)


def rejected(dealer_id: DealerId, rfq_id: RfqId | None, reason: str, raw: str | None,
             received_at: datetime) -> InboundRejected:
    """An answer the adapter could not read, for the engine to audit (``message.rejected``)."""
    return InboundRejected(dealer_id, reason, received_at, msg_id=None, rfq_id=rfq_id,
                           raw=None if raw is None else raw[:RAW_MAX])


# --- wire bodies -----------------------------------------------------------------------------


def quote_body(rfq_id: str, quote_id: str, quantity: Decimal, valid_until: datetime, *,
               bid: Decimal | None = None, ask: Decimal | None = None) -> dict[str, Any]:
    """A ``quote`` body with only the sides quoted."""
    body: dict[str, Any] = {"rfq_id": rfq_id, "quote_id": quote_id,
                            "quantity": decimal_str(quantity), "valid_until": format_ts(valid_until)}
    if bid is not None:
        body["bid"] = decimal_str(bid)
    if ask is not None:
        body["ask"] = decimal_str(ask)
    return body


def confirm_body(execution_id: str, rfq_id: str, quote_id: str, price: Decimal, quantity: Decimal,
                 dealer_trade_id: str) -> dict[str, Any]:
    return {"execution_id": execution_id, "rfq_id": rfq_id, "quote_id": quote_id, "price": decimal_str(price),
            "quantity": decimal_str(quantity), "dealer_trade_id": dealer_trade_id}


def reject_body(execution_id: str, rfq_id: str, reason: str) -> dict[str, Any]:
    return {"execution_id": execution_id, "rfq_id": rfq_id, "reason": reason}


def status_body(online: bool, instruments: Iterable[str]) -> dict[str, Any]:
    return {"online": online, "instruments": list(instruments)}


# --- errors and tasks ------------------------------------------------------------------------


def describe_error(exc: BaseException, limit: int | None = 300) -> str:
    """``InsufficientFunds: okx {...}`` (the type alone when the text is empty; "timed out" for
    a bare timeout), cut to ``limit`` characters (None: whole), for reasons and logs."""
    text = str(exc).strip()
    if not text:
        described = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    else:
        described = f"{type(exc).__name__}: {text}"
    if limit is None or len(described) <= limit:
        return described
    return described[: limit - 3] + "..."


def track(task: asyncio.Task[Any], tasks: set[asyncio.Task[Any]], **log_context: Any) -> asyncio.Task[Any]:
    """Keep ``task`` in ``tasks`` while it runs; a failure it ends with is logged, not lost."""
    tasks.add(task)

    def done(finished: asyncio.Task[Any]) -> None:
        tasks.discard(finished)
        if not finished.cancelled() and finished.exception() is not None:
            _log.error("dealer_task_failed", task=finished.get_name(), error=repr(finished.exception()),
                       **log_context)

    task.add_done_callback(done)
    return task


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
