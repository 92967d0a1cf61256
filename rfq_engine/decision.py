"""The decision record of one RFQ, built from its audit events alone (pure).

It is what compliance reads: who asked, which dealers were asked, every quote with its
times, which were rejected and why, each mandate rule's verdict, the ranking, the winner
and why (with the cover price), the last look, the fills, slippage against the reference,
and the chain position of every event.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rfq_engine.domain import decimal_str, format_ts
from rfq_engine.pricing.tca import tca
from rfq_engine.store.events import AuditEvent
from rfq_engine.store.events import EventType as E

__all__ = ["build_decision_record", "render_decision_record"]


def _slippage_bps(price: Decimal, reference: dict[str, Any] | None, side: str) -> str | None:
    """Positive = better for the requester than the reference; bps of the underlying price."""
    if not reference or reference.get("value") is None or not reference.get("underlying_price"):
        return None
    value = Decimal(reference["value"])
    base = Decimal(reference["underlying_price"])
    edge = (price - value) if side == "bid" else (value - price)
    return decimal_str((edge / base * 10000).quantize(Decimal("0.01")))


def build_decision_record(events: Sequence[AuditEvent]) -> dict[str, Any]:
    if not events:
        raise ValueError("no events for this RFQ")
    record: dict[str, Any] = {
        "rfq_id": events[0].rfq_id, "state": "created", "reason": "", "spec": None,
        "submitted_at": None, "notional": None, "reference": None, "pre_trade": [],
        "approval": {}, "dealers_asked": [], "send_failures": {}, "deadline": None,
        "window": None,
        "quotes": [], "declines": [], "ranking": [], "rejected_at_ranking": [],
        "min_quotes": None, "awards": [], "fills": [], "filled_quantity": "0",
        "average_price": None, "slippage_bps": None, "tca": None, "cancel": None, "messages_rejected": [],
        "timeline": [],
    }
    awards: dict[str, dict[str, Any]] = {}
    filled_qty = Decimal(0)
    filled_value = Decimal(0)
    side = "bid"
    for event in events:
        p = event.payload
        record["timeline"].append({"seq": event.seq, "ts": format_ts(event.ts),
                                   "type": event.type, "actor": event.actor})
        if event.type == E.RFQ_SUBMITTED:
            record.update(spec=p["spec"], submitted_at=format_ts(event.ts),
                          notional=p.get("notional"), reference=p.get("reference"))
            record["requester"] = event.actor
        elif event.type == E.RFQ_STATE_CHANGED:
            record["state"], record["reason"] = p["to"], p.get("reason", "")
        elif event.type == E.MANDATE_CHECKED:
            record["pre_trade"] = p["verdicts"]
        elif event.type == E.APPROVAL_REQUESTED:
            record["approval"].update(requested=True, reason=p.get("reason"),
                                      expires_at=p.get("expires_at"))
        elif event.type in (E.APPROVAL_GRANTED, E.APPROVAL_REFUSED):
            record["approval"].update(decision=event.type.split(".")[1], by=event.actor,
                                      at=format_ts(event.ts), note=p.get("reason"))
        elif event.type == E.RFQ_SENT:
            record.update(dealers_asked=p["sent"], send_failures=p.get("failed", {}),
                          deadline=p["deadline"])
        elif event.type == E.QUOTE_RECEIVED:
            record["quotes"].append({**p, "status": "received", "reason": ""})
        elif event.type == E.QUOTE_REJECTED:
            match = next((q for q in reversed(record["quotes"])
                          if q.get("msg_id") == p.get("msg_id") and p.get("msg_id")), None)
            if match is not None and match["status"] == "received":
                match.update(status="rejected", reason=p["reason"])
            else:
                record["quotes"].append({**p, "status": "rejected"})
        elif event.type == E.QUOTE_DECLINED:
            record["declines"].append({"dealer_id": p["dealer_id"], "reason": p.get("reason", ""),
                                       "at": format_ts(event.ts)})
        elif event.type == E.QUOTES_RANKED:
            side = p["side"]
            record.update(ranking=p["ranking"], rejected_at_ranking=p["rejected"],
                          min_quotes=p.get("min_quotes"), side=side)
            if p.get("reference") is not None:
                record["reference"] = p["reference"]
        elif event.type == E.WINDOW_CLOSED:
            record["window"] = {"closed_at": p.get("closed_at"), "policy": p.get("policy"),
                                "reason": p.get("reason"), "deadline": p.get("deadline")}
        elif event.type == E.AWARD_DECIDED:
            entry = {**p, "decided_at": format_ts(event.ts), "outcome": "pending",
                     "path": ["decided"]}
            awards[p["execution_id"]] = entry
            record["awards"].append(entry)
        elif event.type == E.AWARD_REFERENCE:
            for execution_id in p.get("execution_ids", []):
                if execution_id in awards:
                    awards[execution_id]["reference"] = p["reference"]
        elif event.type == E.AWARD_SENT and p.get("execution_id") in awards:
            if p.get("error"):
                awards[p["execution_id"]]["path"].append(f"send failed: {p['error']}")
        elif event.type == E.EXECUTION_CONFIRMED and p["execution_id"] in awards:
            a = awards[p["execution_id"]]
            a.update(outcome="confirmed", confirmed_at=format_ts(event.ts),
                     dealer_trade_id=p.get("dealer_trade_id"))
            a["path"].append("confirmed by the dealer's lookup" if p.get("source") == "reconciled"
                             else "confirmed by the dealer")
        elif event.type == E.EXECUTION_REJECTED and p["execution_id"] in awards:
            a = awards[p["execution_id"]]
            a.update(outcome="timed_out" if p.get("timeout") else "rejected",
                     reject_reason=p.get("reason"))
            a["path"].append(f"rejected: {p.get('reason')}")
        elif event.type == E.EXECUTION_UNKNOWN and p["execution_id"] in awards:
            a = awards[p["execution_id"]]
            a.update(outcome="unknown")
            a["path"].append(f"outcome unknown ({p.get('reason')}); asking the dealer until "
                             f"{p.get('reconcile_by')}")
        elif event.type == E.EXECUTION_UNRESOLVED and p["execution_id"] in awards:
            a = awards[p["execution_id"]]
            a.update(outcome="unresolved")
            a["path"].append(f"unresolved after {p.get('attempts')} question(s): {p.get('reason')}")
        elif event.type == E.EXECUTION_RESOLVED and p["execution_id"] in awards:
            a = awards[p["execution_id"]]
            executed = bool(p.get("executed"))
            a.update(outcome="confirmed" if executed else "rejected",
                     resolution={k: p.get(k) for k in ("executed", "quantity", "price",
                                                       "dealer_trade_id", "evidence",
                                                       "resolved_by")})
            if executed:
                a["dealer_trade_id"] = p.get("dealer_trade_id")
            else:
                a["reject_reason"] = f"resolved by {p.get('resolved_by')}: not executed"
            a["path"].append(f"resolved by {p.get('resolved_by')}: "
                             f"{'executed' if executed else 'not executed'} "
                             f"(evidence: {p.get('evidence')})")
        elif event.type == E.FILL_RECORDED:
            record["fills"].append({**p, "at": format_ts(event.ts)})
            filled_qty += Decimal(p["quantity"])
            filled_value += Decimal(p["quantity"]) * Decimal(p["price"])
        elif event.type == E.CANCEL_REQUESTED:
            record["cancel"] = {"by": event.actor, "reason": p.get("reason"),
                                "at": format_ts(event.ts)}
        elif event.type == E.MESSAGE_REJECTED:
            record["messages_rejected"].append({"dealer_id": p.get("dealer_id"),
                                                "reason": p.get("reason"), "at": format_ts(event.ts)})
    record["filled_quantity"] = decimal_str(filled_qty)
    if filled_qty:
        average = filled_value / filled_qty
        record["average_price"] = decimal_str(average.quantize(Decimal("0.00000001")))
        record["slippage_bps"] = _slippage_bps(average, record["reference"], side)
        # at award: the reference an award.decided carries, once the engine records one there
        at_award = next((a["reference"] for a in reversed(record["awards"]) if a.get("reference")), None)
        record["tca"] = tca(side, average, record["reference"], at_award)
    return record


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
