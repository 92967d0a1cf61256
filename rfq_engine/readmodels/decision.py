"""The decision record of one RFQ, built from its audit events alone (pure).

It is what compliance reads: who asked, which dealers were asked, every quote with its
times, which were rejected and why, each mandate rule's verdict, the ranking, the winner
and why (with the cover price), the last look, the fills, slippage against the reference,
and the chain position of every event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rfq_engine.domain import decimal_str, format_ts
from rfq_engine.domain.events import (
    AnyEvent,
    ApprovalGranted,
    ApprovalRefused,
    ApprovalRequested,
    AwardDecided,
    AwardReferenceRecorded,
    AwardSent,
    CancelRequested,
    ExecutionConfirmed,
    ExecutionRejected,
    ExecutionResolved,
    ExecutionUnknown,
    ExecutionUnresolved,
    FillRecorded,
    MandateChecked,
    MessageRejected,
    QuoteDeclined,
    QuoteReceived,
    QuoteRejected,
    QuotesRanked,
    RfqSent,
    RfqStateChanged,
    RfqSubmitted,
    UnknownEvent,
    WindowClosed,
    encode,
)
from rfq_engine.pricing.tca import tca
from rfq_engine.readmodels.events import typed
from rfq_engine.store.events import AuditEvent

__all__ = ["build_decision_record", "render_decision_record"]


def _slippage_bps(price: Decimal, reference: dict[str, Any] | None, side: str) -> str | None:
    """Positive = better for the requester than the reference; bps of the underlying price."""
    if not reference or reference.get("value") is None or not reference.get("underlying_price"):
        return None
    value = Decimal(reference["value"])
    base = Decimal(reference["underlying_price"])
    edge = (price - value) if side == "bid" else (value - price)
    return decimal_str((edge / base * 10000).quantize(Decimal("0.01")))


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else decimal_str(value)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def _stored(event: QuoteReceived | QuoteRejected | AwardDecided | FillRecorded) -> dict[str, Any]:
    """The event's payload as the log keeps it (canonical JSON: keys sorted)."""
    return dict(sorted(encode(event).items()))


def _conversion_line(conversion: dict[str, Any]) -> str:
    """A coin premium's conversion (``domain.premium``), as the quote recorded it."""
    index = conversion.get("index") or {}
    sides = []
    for side in ("bid", "ask"):
        s = conversion.get(side)
        if isinstance(s, dict):
            sign = "+" if side == "ask" else "-"
            sides.append(f"{side} {s.get('premium')} {sign} fee {s.get('fee')} = {s.get('all_in')} "
                         f"{conversion.get('premium_currency')} -> {s.get('price')}")
    return (f"converted at {index.get('price')} {index.get('currency')} ({index.get('source')}, "
            f"{index.get('at')}): " + "; ".join(sides))


def build_decision_record(events: Sequence[AuditEvent]) -> dict[str, Any]:
    if not events:
        raise ValueError("no events for this RFQ")
    builder = _Record(events[0].rfq_id)
    for event in events:
        builder.record["timeline"].append({"seq": event.seq, "ts": format_ts(event.ts),
                                           "type": event.type, "actor": event.actor})
        decoded = typed(event.type, event.payload, seq=event.seq, rfq_id=event.rfq_id)
        if decoded is not None:  # not decoded (logged): in the timeline only
            builder.apply(event, decoded)
    return builder.finish()


@dataclass
class _Record:
    """The record as it is folded from the events, in order."""

    rfq_id: str | None
    record: dict[str, Any] = field(init=False)
    awards: dict[str, dict[str, Any]] = field(default_factory=dict)
    filled_qty: Decimal = Decimal(0)
    filled_value: Decimal = Decimal(0)
    side: str = "bid"

    def __post_init__(self) -> None:
        self.record = {
            "rfq_id": self.rfq_id, "state": "created", "reason": "", "spec": None,
            "submitted_at": None, "notional": None, "reference": None, "pre_trade": [],
            "approval": {}, "dealers_asked": [], "send_failures": {}, "deadline": None,
            "window": None,
            "quotes": [], "declines": [], "ranking": [], "rejected_at_ranking": [],
            "min_quotes": None, "awards": [], "fills": [], "filled_quantity": "0",
            "average_price": None, "slippage_bps": None, "tca": None, "cancel": None,
            "messages_rejected": [], "timeline": [],
        }

    def apply(self, stored: AuditEvent, event: AnyEvent | UnknownEvent) -> None:
        record = self.record
        at = format_ts(stored.ts)
        match event:
            case RfqSubmitted():
                record.update(spec=event.spec, submitted_at=at, notional=_dec(event.notional),
                              reference=event.reference)
                record["requester"] = stored.actor
            case RfqStateChanged():
                record["state"], record["reason"] = event.to, event.reason
            case MandateChecked():
                record["pre_trade"] = event.verdicts
            case ApprovalRequested():
                record["approval"].update(requested=True, reason=event.reason,
                                          expires_at=_ts(event.expires_at))
            case ApprovalGranted():
                record["approval"].update(decision="granted", by=stored.actor, at=at, note=None)
            case ApprovalRefused():
                record["approval"].update(decision="refused", by=stored.actor, at=at,
                                          note=event.reason)
            case RfqSent():
                record.update(dealers_asked=list(event.sent), send_failures=event.failed,
                              deadline=format_ts(event.deadline))
            case QuoteReceived():
                record["quotes"].append({**_stored(event), "status": "received", "reason": ""})
            case QuoteRejected():
                self._quote_rejected(event)
            case QuoteDeclined():
                record["declines"].append({"dealer_id": event.dealer_id, "reason": event.reason,
                                           "at": at})
            case QuotesRanked():
                self.side = event.side
                record.update(ranking=event.ranking, rejected_at_ranking=event.rejected,
                              min_quotes=event.min_quotes, side=event.side)
                if event.reference is not None:
                    record["reference"] = event.reference
            case WindowClosed():
                record["window"] = {"closed_at": format_ts(event.closed_at),
                                    "policy": event.policy, "reason": event.reason,
                                    "deadline": _ts(event.deadline)}
            case AwardDecided():
                entry = {**_stored(event), "decided_at": at, "outcome": "pending",
                         "path": ["decided"]}
                self.awards[event.execution_id] = entry
                record["awards"].append(entry)
            case AwardReferenceRecorded():
                for execution_id in event.execution_ids:
                    if execution_id in self.awards:
                        self.awards[execution_id]["reference"] = event.reference
            case (AwardSent() | ExecutionConfirmed() | ExecutionRejected() | ExecutionUnknown()
                  | ExecutionUnresolved() | ExecutionResolved()):
                award = self.awards.get(event.execution_id)
                if award is not None:
                    _award_outcome(award, event, at)
            case FillRecorded():
                record["fills"].append({**_stored(event), "at": at})
                self.filled_qty += event.quantity
                self.filled_value += event.quantity * event.price
            case CancelRequested():
                record["cancel"] = {"by": stored.actor, "reason": event.reason, "at": at}
            case MessageRejected():
                record["messages_rejected"].append({"dealer_id": event.dealer_id,
                                                    "reason": event.reason, "at": at})

    def _quote_rejected(self, event: QuoteRejected) -> None:
        quotes: list[dict[str, Any]] = self.record["quotes"]
        match = next((q for q in reversed(quotes)
                      if event.msg_id and q.get("msg_id") == event.msg_id), None)
        if match is not None and match["status"] == "received":
            match.update(status="rejected", reason=event.reason)
        else:
            quotes.append({**_stored(event), "status": "rejected"})

    def finish(self) -> dict[str, Any]:
        record = self.record
        record["filled_quantity"] = decimal_str(self.filled_qty)
        if self.filled_qty:
            average = self.filled_value / self.filled_qty
            record["average_price"] = decimal_str(average.quantize(Decimal("0.00000001")))
            record["slippage_bps"] = _slippage_bps(average, record["reference"], self.side)
            # at award: the reference an award carries (award.reference_recorded)
            at_award = next((a["reference"] for a in reversed(record["awards"])
                             if a.get("reference")), None)
            record["tca"] = tca(self.side, average, record["reference"], at_award)
        return record


def _award_outcome(award: dict[str, Any], event: AwardSent | ExecutionConfirmed | ExecutionRejected
                   | ExecutionUnknown | ExecutionUnresolved | ExecutionResolved, at: str) -> None:
    """What happened to one award after it was decided: its outcome and its path."""
    path: list[str] = award["path"]
    match event:
        case AwardSent():
            if event.error:
                path.append(f"send failed: {event.error}")
        case ExecutionConfirmed():
            award.update(outcome="confirmed", confirmed_at=at,
                         dealer_trade_id=event.dealer_trade_id)
            path.append("confirmed by the dealer's lookup" if event.source == "reconciled"
                        else "confirmed by the dealer")
        case ExecutionRejected():
            award.update(outcome="timed_out" if event.timeout else "rejected",
                         reject_reason=event.reason)
            path.append(f"rejected: {event.reason}")
        case ExecutionUnknown():
            award.update(outcome="unknown")
            path.append(f"outcome unknown ({event.reason}); asking the dealer until "
                        f"{format_ts(event.reconcile_by)}")
        case ExecutionUnresolved():
            award.update(outcome="unresolved")
            path.append(f"unresolved after {event.attempts} question(s): {event.reason}")
        case ExecutionResolved():
            executed = event.executed
            award.update(outcome="confirmed" if executed else "rejected",
                         resolution={"executed": executed, "quantity": _dec(event.quantity),
                                     "price": _dec(event.price),
                                     "dealer_trade_id": event.dealer_trade_id,
                                     "evidence": event.evidence,
                                     "resolved_by": event.resolved_by})
            if executed:
                award["dealer_trade_id"] = event.dealer_trade_id
            else:
                award["reject_reason"] = f"resolved by {event.resolved_by}: not executed"
            path.append(f"resolved by {event.resolved_by}: "
                        f"{'executed' if executed else 'not executed'} "
                        f"(evidence: {event.evidence})")


def _line(label: str, value: object) -> str:
    return f"  {label:<18} {value}"


def render_decision_record(record: dict[str, Any]) -> str:
    spec = record.get("spec") or {}
    out = [f"RFQ {record['rfq_id']}  —  {record['state'].upper()}  ({record['reason']})"]
    out.append(_line("requester", f"{spec.get('requester')}  mandate {spec.get('mandate')}"))
    direction = spec.get("direction")
    if spec.get("private_side"):
        direction = f"{direction} (private side: {spec['private_side']})"
    out.append(_line("request", f"{direction} {spec.get('quantity')} {spec.get('quantity_unit')}"
                                f"  partial={'yes' if spec.get('allow_partial') else 'no'}"
                                f"  window {spec.get('window_ms')} ms"))
    for leg in spec.get("legs", []):
        inst = leg["instrument"]
        detail = " ".join(str(inst[k]) for k in ("underlying", "quote_ccy", "expiry", "strike",
                                                 "option_type", "start", "days") if k in inst)
        out.append(_line("  leg", f"{leg['side']} {leg['ratio']}x {inst['kind']} {detail}"))
    out.append(_line("submitted", f"{record['submitted_at']}  notional {record['notional']}"))
    ref = record.get("reference")
    if ref:
        out.append(_line("reference", f"{ref.get('value')} (underlying {ref.get('underlying_price')},"
                                      f" {ref.get('source')}, as of {ref.get('as_of')})"))
    out.append("  pre-trade checks:")
    for v in record["pre_trade"]:
        out.append(f"    [{'PASS' if v['passed'] else 'FAIL'}] {v['rule']}: {v['reason']}")
    if record["approval"]:
        out.append(_line("approval", record["approval"]))
    out.append(_line("dealers asked", ", ".join(record["dealers_asked"]) or "none"))
    window = record.get("window")
    if window:
        out.append(_line("window closed", f"{window['closed_at']} ({window['reason']}; policy "
                                          f"{window['policy']}, deadline {window['deadline']})"))
    for dealer, why in record["send_failures"].items():
        out.append(_line("  not reached", f"{dealer}: {why}"))
    out.append("  quotes:")
    for q in record["quotes"]:
        price = " / ".join(f"{k} {q[k]}" for k in ("bid", "ask") if q.get(k) is not None)
        status = q["status"] + (f": {q['reason']}" if q.get("reason") else "")
        out.append(f"    {q.get('dealer_id')}: {price} x {q.get('quantity')}  at {q.get('received_at')}"
                   f"  valid to {q.get('valid_until')}  [{status}]")
        conversion = q.get("conversion")
        if isinstance(conversion, dict):
            out.append("      " + _conversion_line(conversion))
    for d in record["declines"]:
        out.append(f"    {d['dealer_id']}: declined ({d['reason']}) at {d['at']}")
    if record["ranking"] or record["rejected_at_ranking"]:
        out.append(f"  ranking ({record.get('side')}):")
        for r in record["ranking"]:
            out.append(f"    #{r['rank']} {r['dealer_id']} {r['price']} x {r['quantity']}")
        for r in record["rejected_at_ranking"]:
            out.append(f"    rejected {r['dealer_id']} {r.get('price')}: {r['reason']}")
    if record["min_quotes"]:
        mq = record["min_quotes"]
        out.append(f"    [{'PASS' if mq['passed'] else 'FAIL'}] {mq['rule']}: {mq['reason']}")
    for a in record["awards"]:
        out.append(f"  award #{a['rank']} -> {a['dealer_id']} {a['side']} {a['price']} x {a['quantity']}"
                   f"  ({a['reason']}; cover {a.get('cover_price')})  -> {a['outcome']}"
                   + (f": {a['reject_reason']}" if a.get("reject_reason") else ""))
        if len(a.get("path", ())) > 1:
            out.append(f"    path: {' -> '.join(a['path'])}")
    for f in record["fills"]:
        out.append(f"  fill {f['dealer_id']} {f['quantity']} @ {f['price']}  trade {f['dealer_trade_id']}")
    out.append(_line("filled", f"{record['filled_quantity']}  avg {record['average_price']}"
                               f"  slippage vs reference {record['slippage_bps']} bps"))
    if record["messages_rejected"]:
        out.append(_line("rejected msgs", len(record["messages_rejected"])))
    return "\n".join(out)
