"""Projection of audit events onto the query tables rfqs / quotes / awards / fills.

Why one module for both stores: the memory store and the SQL store must show the same
rows for the same events. Both turn an event into ``Change`` values with
:func:`changes_for` and apply them with :func:`apply_change` to a :class:`Tables`:
the memory store to its complete tables, the SQL writer to just the rows a batch touches
(loaded in the commit's transaction, see :func:`touched`) which it then upserts back.
There is no second implementation of the rules to drift.

Rules (payload keys: see ``EventType`` in events.py):

- ``rfq.submitted`` inserts an rfq (state ``created``); a repeated submission of the same
  rfq_id is ignored (replay-safe).
- ``rfq.state_changed`` sets state, updated_at (= event ts) and reason.
- ``quote.received`` inserts a quote ``received``; the same (rfq, dealer, quote_id) again
  replaces it.
- ``quote.rejected`` with dealer_id and quote_id marks the quote ``rejected`` with the
  reason, inserting it (with whatever quote fields parse) if it was never received.
- ``quotes.ranked``: ``valid`` + rank for each ranking entry, ``rejected`` + reason for each
  rejected entry, on quotes that exist.
- ``award.decided`` inserts an award ``pending``; ``execution.confirmed`` ->
  ``confirmed``; ``execution.rejected`` -> ``rejected`` + reason; ``execution.unknown`` ->
  ``unknown``; ``execution.unresolved`` -> ``unresolved`` + reason;
  ``execution.resolved`` -> ``confirmed`` or ``rejected`` with "resolved by ...".
- ``fill.recorded`` inserts a fill (filled_at = event ts) and adds its quantity to the
  rfq's filled_quantity; a repeated fill_id is ignored so it is never counted twice.

Everything else changes nothing. Projections are lenient: an event whose payload lacks a
field a rule needs yields no change. The event itself is still stored and chained; the
log is the record, the tables are a derived index of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rfq_engine.domain import ValidationError, parse_date, parse_decimal, parse_ts
from rfq_engine.store.base import AwardRow, FillRow, QuoteRow, RfqRow
from rfq_engine.store.events import AuditEvent, EventType

__all__ = [
    "AwardDecided",
    "AwardStatusSet",
    "Change",
    "Dirty",
    "FillRecorded",
    "QuoteKey",
    "QuoteRanked",
    "QuoteReceived",
    "QuoteRejected",
    "RfqStateSet",
    "RfqSubmitted",
    "Tables",
    "Touched",
    "apply_change",
    "changes_for",
    "touched",
]

QuoteKey = tuple[str, str, str]  # (rfq_id, dealer_id, quote_id)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RfqSubmitted:
    row: RfqRow


@dataclass(frozen=True, slots=True)
class RfqStateSet:
    rfq_id: str
    state: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class QuoteReceived:
    row: QuoteRow


@dataclass(frozen=True, slots=True)
class QuoteRejected:
    row: QuoteRow  # inserted as is when the quote was never received


@dataclass(frozen=True, slots=True)
class QuoteRanked:
    key: QuoteKey
    status: str
    rank: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class AwardDecided:
    row: AwardRow


@dataclass(frozen=True, slots=True)
class AwardStatusSet:
    execution_id: str
    status: str
    reason: str | None  # None keeps the current reason


@dataclass(frozen=True, slots=True)
class FillRecorded:
    row: FillRow


Change = (
    RfqSubmitted | RfqStateSet | QuoteReceived | QuoteRejected | QuoteRanked | AwardDecided
    | AwardStatusSet | FillRecorded
)


@dataclass(slots=True)
class Tables:
    """Rows by primary key. Complete in the memory store, partial in a SQL commit."""

    rfqs: dict[str, RfqRow] = field(default_factory=dict)
    quotes: dict[QuoteKey, QuoteRow] = field(default_factory=dict)
    awards: dict[str, AwardRow] = field(default_factory=dict)
    fills: dict[str, FillRow] = field(default_factory=dict)


@dataclass(slots=True)
class Touched:
    """Keys whose current rows a list of changes reads: what a SQL commit must load."""

    rfq_ids: set[str] = field(default_factory=set)
    quote_keys: set[QuoteKey] = field(default_factory=set)
    execution_ids: set[str] = field(default_factory=set)
    fill_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Dirty:
    """Keys whose rows ``apply_change`` created or modified: what a SQL commit writes back."""

    rfqs: set[str] = field(default_factory=set)
    quotes: set[QuoteKey] = field(default_factory=set)
    awards: set[str] = field(default_factory=set)
    fills: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.rfqs or self.quotes or self.awards or self.fills)


# --- events -> changes ---------------------------------------------------------------------

_PARSE_ERRORS = (ValidationError, KeyError, TypeError, ValueError, AttributeError)


def changes_for(event: AuditEvent, payload: Mapping[str, Any] | None = None) -> list[Change]:
    """The table changes one event implies; [] for other types, engine-wide or malformed events.

    ``payload`` is ``event.payload`` when the caller has it parsed already.
    """
    build = _BUILDERS.get(event.type)
    if build is None or event.rfq_id is None:
        return []
    try:
        return build(event.rfq_id, event.ts, event.payload if payload is None else payload)
    except _PARSE_ERRORS:
        return []


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload[key]
    if not isinstance(value, str) or not value:
        raise ValidationError(key, "must be a non-empty string")
    return value


def _opt_text(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    value = payload.get(key)
    return value if isinstance(value, str) else default


def _opt_dec(payload: Mapping[str, Any], key: str) -> Decimal | None:
    value = payload.get(key)
    return None if value is None else parse_decimal(value, key)


def _lenient_dec(payload: Mapping[str, Any], key: str) -> Decimal | None:
    """For rejected quotes: a field that does not parse may be why it was rejected."""
    try:
        return _opt_dec(payload, key)
    except ValidationError:
        return None


def _lenient_ts(payload: Mapping[str, Any], key: str, default: datetime | None) -> datetime | None:
    value = payload.get(key)
    if value is None:
        return default
    try:
        return parse_ts(value, key)
    except ValidationError:
        return default


def _rfq_submitted(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    spec = payload["spec"]
    if not isinstance(spec, Mapping):
        raise ValidationError("spec", "must be an object")
    client_rfq_id = spec.get("client_rfq_id")
    row = RfqRow(
        rfq_id=rfq_id,
        client_rfq_id=client_rfq_id if isinstance(client_rfq_id, str) else None,
        requester=_text(spec, "requester"),
        mandate=_text(spec, "mandate"),
        direction=_text(spec, "direction"),
        quantity=parse_decimal(spec["quantity"], "quantity"),
        quantity_unit=_text(spec, "quantity_unit"),
        state="created",
        notional=parse_decimal(payload["notional"], "notional"),
        filled_quantity=ZERO,
        created_at=ts,
        updated_at=ts,
        reason="",
        spec=dict(spec),
    )
    return [RfqSubmitted(row)]


def _rfq_state_changed(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    return [RfqStateSet(rfq_id, _text(payload, "to"), ts, _opt_text(payload, "reason"))]


def _quote_received(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    received_at = _lenient_ts(payload, "received_at", ts)
    assert received_at is not None
    row = QuoteRow(
        rfq_id=rfq_id,
        dealer_id=_text(payload, "dealer_id"),
        quote_id=_text(payload, "quote_id"),
        bid=_opt_dec(payload, "bid"),
        ask=_opt_dec(payload, "ask"),
        quantity=_opt_dec(payload, "quantity"),
        valid_until=None if payload.get("valid_until") is None
        else parse_ts(payload["valid_until"], "valid_until"),
        received_at=received_at,
        status="received",
        rank=None,
        reason="",
    )
    return [QuoteReceived(row)]


def _quote_rejected(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    if not payload.get("dealer_id") or not payload.get("quote_id"):
        return []
    received_at = _lenient_ts(payload, "received_at", ts)
    assert received_at is not None
    row = QuoteRow(
        rfq_id=rfq_id,
        dealer_id=_text(payload, "dealer_id"),
        quote_id=_text(payload, "quote_id"),
        bid=_lenient_dec(payload, "bid"),
        ask=_lenient_dec(payload, "ask"),
        quantity=_lenient_dec(payload, "quantity"),
        valid_until=_lenient_ts(payload, "valid_until", None),
        received_at=received_at,
        status="rejected",
        rank=None,
        reason=_opt_text(payload, "reason"),
    )
    return [QuoteRejected(row)]


def _quotes_ranked(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    changes: list[Change] = []
    for entry in payload.get("ranking") or ():
        if isinstance(entry, Mapping) and entry.get("dealer_id") and entry.get("quote_id"):
            rank = entry.get("rank")
            key = (rfq_id, _text(entry, "dealer_id"), _text(entry, "quote_id"))
            valid_rank = rank if isinstance(rank, int) and not isinstance(rank, bool) else None
            changes.append(QuoteRanked(key, "valid", valid_rank, ""))
    for entry in payload.get("rejected") or ():
        if isinstance(entry, Mapping) and entry.get("dealer_id") and entry.get("quote_id"):
            key = (rfq_id, _text(entry, "dealer_id"), _text(entry, "quote_id"))
            changes.append(QuoteRanked(key, "rejected", None, _opt_text(entry, "reason")))
    return changes


def _award_decided(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    row = AwardRow(
        execution_id=_text(payload, "execution_id"),
        rfq_id=rfq_id,
        dealer_id=_text(payload, "dealer_id"),
        quote_id=_text(payload, "quote_id"),
        side=_text(payload, "side"),
        price=parse_decimal(payload["price"], "price"),
        quantity=parse_decimal(payload["quantity"], "quantity"),
        confirm_by=parse_ts(payload["confirm_by"], "confirm_by"),
        status="pending",
        reason=_opt_text(payload, "reason"),
    )
    return [AwardDecided(row)]


def _execution_confirmed(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    return [AwardStatusSet(_text(payload, "execution_id"), "confirmed", None)]


def _execution_rejected(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    reason = _opt_text(payload, "reason")
    return [AwardStatusSet(_text(payload, "execution_id"), "rejected", reason)]


def _execution_unknown(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    return [AwardStatusSet(_text(payload, "execution_id"), "unknown", None)]


def _execution_unresolved(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    reason = _opt_text(payload, "reason")
    return [AwardStatusSet(_text(payload, "execution_id"), "unresolved", reason)]


def _execution_resolved(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    executed = payload.get("executed") is True
    who = _opt_text(payload, "resolved_by")
    reason = f"resolved by {who}: {'executed' if executed else 'not executed'}"
    return [AwardStatusSet(_text(payload, "execution_id"),
                           "confirmed" if executed else "rejected", reason)]


def _fill_recorded(rfq_id: str, ts: datetime, payload: Mapping[str, Any]) -> list[Change]:
    raw_last = payload.get("last_date")
    last: date | None = None if raw_last is None else parse_date(raw_last, "last_date")
    row = FillRow(
        fill_id=_text(payload, "fill_id"),
        execution_id=_text(payload, "execution_id"),
        rfq_id=rfq_id,
        dealer_id=_text(payload, "dealer_id"),
        mandate=_text(payload, "mandate"),
        price=parse_decimal(payload["price"], "price"),
        quantity=parse_decimal(payload["quantity"], "quantity"),
        notional=parse_decimal(payload["notional"], "notional"),
        dealer_trade_id=_opt_text(payload, "dealer_trade_id"),
        filled_at=ts,
        last_date=last,
    )
    return [FillRecorded(row)]


_BUILDERS = {
    EventType.RFQ_SUBMITTED.value: _rfq_submitted,
    EventType.RFQ_STATE_CHANGED.value: _rfq_state_changed,
    EventType.QUOTE_RECEIVED.value: _quote_received,
    EventType.QUOTE_REJECTED.value: _quote_rejected,
    EventType.QUOTES_RANKED.value: _quotes_ranked,
    EventType.AWARD_DECIDED.value: _award_decided,
    EventType.EXECUTION_CONFIRMED.value: _execution_confirmed,
    EventType.EXECUTION_REJECTED.value: _execution_rejected,
    EventType.EXECUTION_UNKNOWN.value: _execution_unknown,
    EventType.EXECUTION_UNRESOLVED.value: _execution_unresolved,
    EventType.EXECUTION_RESOLVED.value: _execution_resolved,
    EventType.FILL_RECORDED.value: _fill_recorded,
}


# --- changes -> rows -----------------------------------------------------------------------


def touched(changes: Iterable[Change], created: Touched | None = None) -> Touched:
    """The keys ``changes`` read. With ``created``, also collect there the keys whose first
    change creates the row without reading it: ``QuoteReceived`` (replaces whatever is
    there), and ``RfqSubmitted``, ``AwardDecided``, ``FillRecorded`` (insert unless the row
    exists: a writer that skips loading those must insert them and notice a conflict)."""
    keys = Touched()
    for change in changes:
        match change:
            case RfqSubmitted(row=row):
                if created is not None and row.rfq_id not in keys.rfq_ids:
                    created.rfq_ids.add(row.rfq_id)
                keys.rfq_ids.add(row.rfq_id)
            case RfqStateSet(rfq_id=rfq_id):
                keys.rfq_ids.add(rfq_id)
            case QuoteReceived(row=row):
                key = (row.rfq_id, row.dealer_id, row.quote_id)
                if created is not None and key not in keys.quote_keys:
                    created.quote_keys.add(key)
                keys.quote_keys.add(key)
            case QuoteRejected(row=row):
                keys.quote_keys.add((row.rfq_id, row.dealer_id, row.quote_id))
            case QuoteRanked(key=key):
                keys.quote_keys.add(key)
            case AwardDecided(row=row):
                if created is not None and row.execution_id not in keys.execution_ids:
                    created.execution_ids.add(row.execution_id)
                keys.execution_ids.add(row.execution_id)
            case AwardStatusSet(execution_id=execution_id):
                keys.execution_ids.add(execution_id)
            case FillRecorded(row=row):
                if created is not None and row.fill_id not in keys.fill_ids:
                    created.fill_ids.add(row.fill_id)
                keys.fill_ids.add(row.fill_id)
                keys.rfq_ids.add(row.rfq_id)
    return keys


def apply_change(tables: Tables, change: Change, dirty: Dirty | None = None) -> None:
    """Apply one change in place; record the keys it wrote in ``dirty``.

    Rows are rebuilt with explicit constructors rather than ``dataclasses.replace``,
    which costs several times more and this runs once per event in the group commit.
    """
    dirty = dirty if dirty is not None else Dirty()
    match change:
        case RfqSubmitted(row=row):
            if row.rfq_id not in tables.rfqs:
                tables.rfqs[row.rfq_id] = row
                dirty.rfqs.add(row.rfq_id)
        case RfqStateSet(rfq_id=rfq_id, state=state, at=at, reason=reason):
            r = tables.rfqs.get(rfq_id)
            if r is not None:
                tables.rfqs[rfq_id] = RfqRow(
                    r.rfq_id, r.client_rfq_id, r.requester, r.mandate, r.direction, r.quantity,
                    r.quantity_unit, state, r.notional, r.filled_quantity, r.created_at, at,
                    reason, r.spec,
                )
                dirty.rfqs.add(rfq_id)
        case QuoteReceived(row=row):
            key = (row.rfq_id, row.dealer_id, row.quote_id)
            tables.quotes[key] = row
            dirty.quotes.add(key)
        case QuoteRejected(row=row):
            key = (row.rfq_id, row.dealer_id, row.quote_id)
            existing = tables.quotes.get(key)
            tables.quotes[key] = row if existing is None else _quote_with(
                existing, "rejected", None, row.reason
            )
            dirty.quotes.add(key)
        case QuoteRanked(key=key, status=status, rank=rank, reason=reason):
            existing = tables.quotes.get(key)
            if existing is not None:
                tables.quotes[key] = _quote_with(existing, status, rank, reason)
                dirty.quotes.add(key)
        case AwardDecided(row=row):
            if row.execution_id not in tables.awards:
                tables.awards[row.execution_id] = row
                dirty.awards.add(row.execution_id)
        case AwardStatusSet(execution_id=execution_id, status=status, reason=reason):
            a = tables.awards.get(execution_id)
            if a is not None:
                tables.awards[execution_id] = AwardRow(
                    a.execution_id, a.rfq_id, a.dealer_id, a.quote_id, a.side, a.price,
                    a.quantity, a.confirm_by, status, a.reason if reason is None else reason,
                )
                dirty.awards.add(execution_id)
        case FillRecorded(row=row):
            if row.fill_id in tables.fills:
                return
            tables.fills[row.fill_id] = row
            dirty.fills.add(row.fill_id)
            r = tables.rfqs.get(row.rfq_id)
            if r is not None:
                tables.rfqs[row.rfq_id] = RfqRow(
                    r.rfq_id, r.client_rfq_id, r.requester, r.mandate, r.direction, r.quantity,
                    r.quantity_unit, r.state, r.notional, r.filled_quantity + row.quantity,
                    r.created_at, r.updated_at, r.reason, r.spec,
                )
                dirty.rfqs.add(row.rfq_id)


def _quote_with(q: QuoteRow, status: str, rank: int | None, reason: str) -> QuoteRow:
    return QuoteRow(
        q.rfq_id, q.dealer_id, q.quote_id, q.bid, q.ask, q.quantity, q.valid_until,
        q.received_at, status, rank, reason,
    )
