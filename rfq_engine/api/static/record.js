// One RFQ as the UI holds it: the decision record's shape (rfq_engine/readmodels/decision.py), seeded
// from GET /api/v1/rfqs/{id} and kept current by the stream's events. Applying an event
// twice changes nothing (quotes by quote_id, awards by execution_id, fills by fill_id), so
// a snapshot and the stream may overlap freely.

import { cmp, fmtPrice } from "./decimal.js";
import { TERMINAL, awardSide, tsMicros } from "./util.js";

export function emptyRecord(rfqId) {
  return {
    rfq_id: rfqId, state: "created", reason: "", spec: null, requester: null, submitted_at: null,
    notional: null, reference: null, pre_trade: [], approval: {}, dealers_asked: [],
    send_failures: {}, deadline: null, window_ms: null, sent_at: null, quotes: [], declines: [],
    ranking: [], rejected_at_ranking: [], min_quotes: null, side: null, awards: [], fills: [],
    filled_quantity: "0", average_price: null, slippage_bps: null, cancel: null,
    messages_rejected: [], timeline: [], ranked: false,
  };
}

// From a full RFQ view (POST or GET /api/v1/rfqs/{id}).
export function fromView(view) {
  const rec = emptyRecord(view.rfq_id);
  const d = view.decision || {};
  Object.assign(rec, d);
  rec.spec = d.spec || view.spec;
  rec.requester = d.requester || view.requester;
  rec.state = view.state || d.state;
  rec.reason = view.reason ?? d.reason;
  rec.notional = d.notional ?? view.notional;
  rec.created_at = view.created_at;
  rec.submitted_at = d.submitted_at || view.created_at;
  rec.filled_quantity = view.filled_quantity ?? d.filled_quantity;
  rec.window_ms = rec.spec ? rec.spec.window_ms : null;
  rec.quotes = (d.quotes || []).map((q) => ({ ...q }));
  rec.ranked = (d.timeline || []).some((t) => t.type === "quotes.ranked");
  const sent = (d.timeline || []).find((t) => t.type === "rfq.sent");
  rec.sent_at = sent ? sent.ts : null;
  rec.side = d.side || awardSide(rec.spec);
  return rec;
}

// From a list row (GET /api/v1/rfqs): enough for the history table and a card's header.
export function fromSummary(row) {
  const rec = emptyRecord(row.rfq_id);
  Object.assign(rec, {
    spec: row.spec, requester: row.requester, state: row.state, reason: row.reason,
    notional: row.notional, filled_quantity: row.filled_quantity, created_at: row.created_at,
    submitted_at: row.created_at, side: awardSide(row.spec), summaryOnly: true,
  });
  return rec;
}

function upsert(list, key, value, item) {
  const i = list.findIndex((x) => x[key] === value);
  if (i >= 0) list[i] = { ...list[i], ...item };
  else list.push(item);
}

// Apply one stream event {rfq_id, type, actor, at, payload}. Returns true when it changed.
export function applyEvent(rec, ev) {
  const p = ev.payload || {};
  switch (ev.type) {
    case "rfq.submitted":
      rec.spec = p.spec;
      rec.notional = p.notional ?? rec.notional;
      rec.reference = p.reference ?? rec.reference;
      rec.requester = ev.actor;
      rec.submitted_at = rec.submitted_at || ev.at;
      rec.created_at = rec.created_at || ev.at;
      rec.window_ms = p.spec ? p.spec.window_ms : null;
      rec.side = rec.side || awardSide(p.spec);
      break;
    case "rfq.state_changed":
      if (TERMINAL.has(rec.state) && !TERMINAL.has(p.to)) return false; // a late, older event
      rec.state = p.to;
      rec.reason = p.reason || "";
      break;
    case "mandate.checked":
      rec.pre_trade = p.verdicts || [];
      break;
    case "approval.requested":
      rec.approval = { ...rec.approval, requested: true, reason: p.reason,
        expires_at: p.expires_at, notional: p.notional, threshold: p.threshold };
      break;
    case "approval.granted":
    case "approval.refused":
      rec.approval = { ...rec.approval, decision: ev.type.split(".")[1], by: ev.actor, at: ev.at,
        note: p.reason };
      break;
    case "rfq.sent":
      rec.dealers_asked = p.sent || [];
      rec.send_failures = p.failed || {};
      rec.deadline = p.deadline;
      rec.window_ms = p.window_ms ?? rec.window_ms;
      rec.sent_at = rec.sent_at || ev.at;
      break;
    case "quote.received": {
      const existing = rec.quotes.find((q) => q.quote_id === p.quote_id);
      if (existing) return false;
      rec.quotes.push({ ...p, status: "received", reason: "" });
      break;
    }
    case "quote.rejected": {
      const match = rec.quotes.find((q) => (p.msg_id && q.msg_id === p.msg_id)
        || (p.quote_id && q.quote_id === p.quote_id));
      if (match) {
        if (match.status === "rejected") return false;
        Object.assign(match, { status: "rejected", reason: p.reason, stage: p.stage });
      } else {
        rec.quotes.push({ ...p, status: "rejected" });
      }
      break;
    }
    case "quote.declined":
      upsert(rec.declines, "dealer_id", p.dealer_id,
        { dealer_id: p.dealer_id, reason: p.reason || "", at: ev.at });
      break;
    case "quotes.ranked":
      rec.ranking = p.ranking || [];
      rec.rejected_at_ranking = p.rejected || [];
      rec.min_quotes = p.min_quotes || null;
      rec.side = p.side;
      if (p.reference) rec.reference = p.reference;
      rec.ranked = true;
      break;
    case "award.decided": {
      const prior = rec.awards.find((a) => a.execution_id === p.execution_id);
      upsert(rec.awards, "execution_id", p.execution_id,
        { ...p, decided_at: ev.at, outcome: prior ? prior.outcome : "pending" });
      break;
    }
    case "execution.confirmed":
      upsert(rec.awards, "execution_id", p.execution_id, { execution_id: p.execution_id,
        outcome: "confirmed", confirmed_at: ev.at, dealer_trade_id: p.dealer_trade_id });
      break;
    case "execution.rejected":
      upsert(rec.awards, "execution_id", p.execution_id, { execution_id: p.execution_id,
        outcome: p.timeout ? "timed_out" : "rejected", reject_reason: p.reason });
      break;
    case "execution.unknown":
      upsert(rec.awards, "execution_id", p.execution_id, { execution_id: p.execution_id,
        outcome: "unknown", unknown_reason: p.reason, reconcile_by: p.reconcile_by });
      break;
    case "execution.unresolved":
      upsert(rec.awards, "execution_id", p.execution_id, { execution_id: p.execution_id,
        outcome: "unresolved", unresolved_reason: p.reason });
      break;
    case "execution.resolved":
      upsert(rec.awards, "execution_id", p.execution_id, { execution_id: p.execution_id,
        outcome: p.executed ? "confirmed" : "rejected", dealer_trade_id: p.dealer_trade_id,
        reject_reason: p.executed ? "" : `resolved by ${p.resolved_by}: not executed`,
        resolution: { executed: p.executed, evidence: p.evidence, resolved_by: p.resolved_by } });
      break;
    case "fill.recorded":
      upsert(rec.fills, "fill_id", p.fill_id, { ...p, at: ev.at });
      rec.filled_quantity = sumQuantities(rec.fills);
      break;
    case "rfq.cancel_requested":
      rec.cancel = { by: ev.actor, reason: p.reason, at: ev.at };
      break;
    case "message.rejected":
      rec.messages_rejected.push({ dealer_id: p.dealer_id, reason: p.reason, at: ev.at });
      break;
    default:
      return false;
  }
  rec.summaryOnly = false;
  return true;
}

function sumQuantities(fills) {
  // exact: scale every quantity to the longest fraction, add as BigInt
  let total = 0n;
  let scale = 0;
  const parts = fills.map((f) => String(f.quantity));
  for (const s of parts) scale = Math.max(scale, (s.split(".")[1] || "").length);
  for (const s of parts) {
    const [i, f = ""] = s.split(".");
    total += BigInt(i + f.padEnd(scale, "0"));
  }
  const digits = total.toString().padStart(scale + 1, "0");
  return scale ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}`.replace(/\.?0+$/, "") : digits;
}

const better = (side) => (a, b) => {
  const c = cmp(a.price, b.price);
  if (c !== 0 && c !== null) return side === "bid" ? -c : c;
  return (tsMicros(a.received_at) || 0) - (tsMicros(b.received_at) || 0);
};

// The ladder: every invited dealer once, best first. Before the window closes the rank is
// provisional (price order of the quotes so far); after, it is the engine's own ranking.
// status: valid | rejected | superseded | declined | waiting | no_answer | not_reached
export function ladder(rec) {
  const side = rec.side || awardSide(rec.spec);
  const rankById = new Map(rec.ranking.map((r) => [r.quote_id, r]));
  const rejectedById = new Map(rec.rejected_at_ranking.map((r) => [r.quote_id, r]));
  const awardByQuote = new Map(rec.awards.map((a) => [a.quote_id, a]));
  const latestValid = new Map();
  for (const q of rec.quotes) if (q.status !== "rejected") latestValid.set(q.dealer_id, q);
  const rows = [];
  for (const q of rec.quotes) {
    const price = side === "bid" ? q.bid : q.ask;
    const row = { dealer_id: q.dealer_id, quote: q, price, quantity: q.quantity,
      received_at: q.received_at, valid_until: q.valid_until, status: "valid", reason: "",
      rank: null, award: awardByQuote.get(q.quote_id) || null, verdicts: [],
      conversion: conversionText(q.conversion) };
    if (q.status === "rejected") Object.assign(row, { status: "rejected", reason: q.reason });
    else if (latestValid.get(q.dealer_id) !== q) Object.assign(row, { status: "superseded",
      reason: "replaced by a later quote" });
    else if (rec.ranked && rejectedById.has(q.quote_id)) {
      const r = rejectedById.get(q.quote_id);
      Object.assign(row, { status: "rejected", reason: r.reason, verdicts: r.verdicts || [] });
    } else if (rec.ranked && rankById.has(q.quote_id)) {
      const r = rankById.get(q.quote_id);
      Object.assign(row, { rank: r.rank, verdicts: r.verdicts || [],
        received_at: r.received_at || row.received_at });
    } else if (rec.ranked) {
      Object.assign(row, { status: "rejected", reason: "not in the engine's ranking" });
    }
    if (row.status === "valid" && (price === null || price === undefined)) {
      Object.assign(row, { status: "rejected", reason: `no ${side} price` });
    }
    rows.push(row);
  }
  const valid = rows.filter((r) => r.status === "valid");
  if (!rec.ranked) valid.sort(better(side)).forEach((r, i) => { r.rank = i + 1; });
  else valid.sort((a, b) => a.rank - b.rank);
  markTies(valid);
  const answered = new Set(rows.map((r) => r.dealer_id));
  const declined = rec.declines.map((d) => {
    answered.add(d.dealer_id);
    return { dealer_id: d.dealer_id, status: "declined", reason: d.reason || "declined",
      received_at: d.at, rank: null, price: null };
  });
  const open = rec.state === "open" || rec.state === "created" || rec.state === "pending_approval";
  const waiting = (rec.dealers_asked || []).filter((d) => !answered.has(d)).map((d) => ({
    dealer_id: d, status: open ? "waiting" : "no_answer", reason: open ? "" : "no answer in the window",
    rank: null, price: null }));
  const failed = Object.entries(rec.send_failures || {}).map(([d, why]) => ({
    dealer_id: d, status: "not_reached", reason: why, rank: null, price: null }));
  const others = rows.filter((r) => r.status !== "valid")
    .sort((a, b) => (tsMicros(a.received_at) || 0) - (tsMicros(b.received_at) || 0));
  return { side, rows: [...valid, ...others, ...declined, ...waiting, ...failed] };
}

// Equal prices rank by time received, the earlier quote first (rfq_engine/domain/ranking.py):
// each row of a tie gets tie = {first: the earliest row at that price, rows: all of them,
// behindMs: how much later than the first it arrived (0 for the first)}.
function markTies(ranked) {
  for (let i = 0; i < ranked.length;) {
    let j = i + 1;
    while (j < ranked.length && cmp(ranked[j].price, ranked[i].price) === 0) j++;
    if (j - i > 1) {
      const group = ranked.slice(i, j);
      const t0 = tsMicros(group[0].received_at);
      for (const r of group) {
        r.tie = { first: group[0], rows: group,
          behindMs: t0 === null ? null : (tsMicros(r.received_at) - t0) / 1000 };
      }
    }
    i = j;
  }
}

// One sentence for a ladder with ties: which quote won each tie, and why.
export function tieRule(rows) {
  const firsts = [...new Set(rows.filter((r) => r.tie).map((r) => r.tie.first))];
  if (!firsts.length) return "";
  const each = firsts.map((f) => `${f.tie.rows.map((r) => r.dealer_id).join(" = ")} at ${fmtPrice(f.price)}: `
    + `${f.dealer_id} quoted first`);
  return `Equal prices rank by the time each quote was received, the earlier first (${each.join("; ")}).`;
}

// A tied row's own note: "tie: quoted first" or "tie with desk-a: quoted 312 ms later".
export function tieNote(row, fmtMs) {
  if (!row.tie) return "";
  if (row.tie.first === row) return "tie on price: quoted first";
  const later = row.tie.behindMs === null ? "later" : `${fmtMs(row.tie.behindMs)} later`;
  return `tie with ${row.tie.first.dealer_id}: quoted ${later}`;
}

export function averageFillPrice(rec) {
  if (rec.average_price) return rec.average_price;
  if (rec.fills.length === 1) return rec.fills[0].price;
  return null; // several fills: the server's record has the exact average
}

// A coin premium's conversion as the quote recorded it (quote.received's `conversion`,
// rfq_engine/domain/premium.py), in the words of `rfq audit show`
// (rfq_engine/readmodels/decision.py: _conversion_line): the venue's premium and fee in the
// coin, the index it was converted at (price, currency, source, time) and the price it was
// ranked at. "" for a quote in the RFQ's own currency.
export function conversionText(conversion) {
  if (!conversion || !conversion.index) return "";
  const ix = conversion.index;
  const sides = ["bid", "ask"].filter((side) => conversion[side]).map((side) => {
    const s = conversion[side];
    return `${side} ${s.premium} ${side === "ask" ? "+" : "-"} fee ${s.fee} = ${s.all_in} `
      + `${conversion.premium_currency} -> ${s.price} ${conversion.price_currency}`;
  });
  return `converted at ${ix.price} ${ix.currency} (${ix.source}, ${ix.at}): ${sides.join("; ")}`;
}
