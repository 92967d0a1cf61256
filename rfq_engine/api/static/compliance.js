// Compliance: search RFQs; one RFQ's decision record laid out for a reviewer (every dealer
// asked, every quote with its times, each rule's verdict, the winner and cover price,
// slippage against the reference, the audit trail); the hash chain's status; exports.

import { api, download } from "./api.js";
import { fmt, fmtPrice } from "./decimal.js";
import { fromView, ladder, tieNote, tieRule } from "./record.js";
import {
  DATE_FIELD, LIVE, TERMINAL, clear, directionText, fmtDateTime, fmtMs, fmtTime, h, isoDate, legText,
  nextUtcDate, packageName, quoteCcy, shortId, stateBadge, tsMicros, utcDate,
} from "./util.js";

const STATES = ["created", "pending_approval", "open", "awarding", "confirming", "unresolved", "filled",
  "partially_filled", "not_filled", "cancelled", "expired", "rejected", "failed"];

// The search survives a visit to a record and back.
const search = { text: "", state: "", requester: "", from: "", to: "", rows: null };
let s = null;

export function mount(view, ctx, rfqId) {
  s = { ctx, cleanup: [] };
  s.chainEl = h("div", { class: "chain", testid: "chain-panel" });
  if (rfqId) mountRecord(view, rfqId);
  else mountSearch(view);
  refreshChain();
  const onEvent = (e) => {
    if (s && s.recordId && e.detail.rfq_id === s.recordId) s.reload();
  };
  ctx.bus.addEventListener("event", onEvent);
  s.cleanup.push(() => ctx.bus.removeEventListener("event", onEvent));
}

export function unmount() {
  if (!s) return;
  for (const fn of s.cleanup) fn();
  s = null;
}

// ---------------------------------------------------------------- chain + export

async function refreshChain() {
  const el = s.chainEl;
  clear(el, h("span", { class: "muted" }, "verifying the audit chain…"));
  try {
    const r = await api("/api/v1/audit/verify");
    if (!s) return;
    clear(el,
      h("div", { class: "chain-row" },
        h("span", { class: `pill ${r.ok ? "good" : "bad"}`, testid: "chain-status",
          "data-ok": String(r.ok) }, r.ok ? "Chain intact" : "Chain BROKEN"),
        h("button", { class: "btn small ghost", type: "button", testid: "verify-chain",
          onclick: refreshChain }, "Verify again")),
      h("dl", { class: "kv mono" },
        h("dt", {}, "events"), h("dd", {}, fmt(String(r.events))),
        h("dt", {}, "head seq"), h("dd", {}, String(r.head_seq)),
        h("dt", {}, "head hash"), h("dd", { title: r.head_hash }, `${(r.head_hash || "").slice(0, 16)}…`),
        h("dt", {}, "checkpoint"), h("dd", {}, r.checkpoint_seq === null ? "none" : `seq ${r.checkpoint_seq}`),
        r.ok ? null : h("dt", {}, "first bad seq"), r.ok ? null : h("dd", { class: "bad" }, String(r.first_bad_seq)),
        r.problem ? h("dt", {}, "problem") : null, r.problem ? h("dd", { class: "bad" }, r.problem) : null,
        h("dt", {}, "checked"), h("dd", {}, `${new Date().toISOString().slice(11, 19)} UTC in ${fmtMs(r.seconds * 1000)}`)),
      r.notes.length ? h("ul", { class: "notes" }, r.notes.map((n) => h("li", {}, n))) : null);
  } catch (err) {
    if (s) clear(el, h("span", { class: "pill bad", testid: "chain-status" }, `verify failed: ${err.message}`));
  }
}

function exportButtons(rfqId = null) {
  const go = (format) => async (e) => {
    const btn = e.currentTarget;
    btn.disabled = true;
    const q = rfqId ? `&rfq_id=${encodeURIComponent(rfqId)}` : "";
    const name = rfqId ? `rfq-${shortId(rfqId)}-audit.${format}` : `rfq-audit.${format}`;
    try {
      const bytes = await download(`/api/v1/audit/export?format=${format}${q}`, name);
      s?.ctx.toast(`exported ${name} (${fmt(String(bytes))} bytes)`, "info");
    } catch (err) {
      s?.ctx.toast(`export: ${err.message}`, "error");
    } finally {
      btn.disabled = false;
    }
  };
  return h("div", { class: "export" },
    h("span", { class: "muted" }, rfqId ? "Export this RFQ's events" : "Export the audit log"),
    h("button", { class: "btn small", type: "button", testid: "export-csv", onclick: go("csv") }, "CSV"),
    h("button", { class: "btn small", type: "button", testid: "export-jsonl", onclick: go("jsonl") }, "JSONL"));
}

// ---------------------------------------------------------------- search

function mountSearch(view) {
  const results = h("tbody", {});
  const note = h("span", { class: "muted", testid: "search-count" });
  const field = (label, el) => h("label", { class: "field" }, h("span", {}, label), el);
  const text = h("input", { class: "input", testid: "search-input", value: search.text,
    placeholder: "RFQ id, client id, requester, dealer, package…", autofocus: true });
  const state = h("select", { class: "input", testid: "search-state" },
    h("option", { value: "" }, "any state"),
    STATES.map((st) => h("option", { value: st, selected: st === search.state }, st.replace(/_/g, " "))));
  const requester = h("input", { class: "input", value: search.requester, placeholder: "any", size: 10 });
  const from = h("input", { ...DATE_FIELD, class: "input date", value: search.from, testid: "search-from" });
  const to = h("input", { ...DATE_FIELD, class: "input date", value: search.to, testid: "search-to" });
  const today = h("button", { type: "button", class: "link-btn", testid: "search-today",
    onclick: () => { from.value = to.value = isoDate(new Date()); run(); } }, "today (UTC)");

  const run = async () => {
    // dates are UTC days: created on or after From 00:00Z, before the day after To 00:00Z
    const bad = [from, to].filter((el) => el.value.trim() && !utcDate(el.value));
    [from, to].forEach((el) => el.classList.toggle("invalid", bad.includes(el)));
    if (bad.length) {
      s?.ctx.toast("search: a date is YYYY-MM-DD, a day in UTC (e.g. 2026-11-21)", "error");
      return;
    }
    Object.assign(search, { text: text.value.trim(), state: state.value, requester: requester.value.trim(),
      from: utcDate(from.value) || "", to: utcDate(to.value) || "" });
    const params = ["limit=1000"];
    if (search.state) params.push(`state=${search.state}`);
    if (search.requester) params.push(`requester=${encodeURIComponent(search.requester)}`);
    if (search.from) params.push(`since=${search.from}T00:00:00Z`);
    if (search.to) params.push(`until=${nextUtcDate(search.to)}T00:00:00Z`);
    try {
      const { rfqs } = await api(`/api/v1/rfqs?${params.join("&")}`);
      search.rows = rfqs;
      render();
    } catch (err) {
      s?.ctx.toast(`search: ${err.message}`, "error");
    }
  };
  const render = () => {
    if (!s) return;
    const needle = search.text.toLowerCase();
    const rows = (search.rows || []).filter((r) => {
      const day = r.created_at.slice(0, 10);
      if (search.from && day < search.from) return false;
      if (search.to && day > search.to) return false;
      if (!needle) return true;
      return [r.rfq_id, r.client_rfq_id, r.requester, r.mandate, r.state, r.reason, packageName(r.spec),
        ...(r.spec.dealers || []), ...(r.spec.legs || []).map(legText)].join(" ").toLowerCase().includes(needle);
    });
    note.textContent = search.rows ? `${rows.length} RFQ${rows.length === 1 ? "" : "s"}` : "";
    clear(results, rows.length ? rows.map((r) => h("tr", { class: "clickable", testid: "result-row",
      "data-rfq-id": r.rfq_id, onclick: () => { location.hash = `#/compliance/${r.rfq_id}`; } },
    h("td", { class: "mono when" }, fmtDateTime(r.created_at)), // wraps to date over time when tight
    h("td", { class: "mono" }, h("a", { href: `#/compliance/${r.rfq_id}` }, shortId(r.rfq_id))),
    h("td", {}, r.requester), h("td", {}, r.mandate),
    h("td", {}, h("span", { class: `dir dir-${r.direction === "two_way" ? r.spec.private_side : r.direction}` },
      directionText(r.spec))), h("td", { class: "pkg" }, packageName(r.spec)),
    h("td", { class: "num mono" }, `${fmt(r.quantity)} ${r.quantity_unit}`),
    h("td", { class: "num mono" }, fmt(r.notional, 0)),
    h("td", { class: "wrap dealers" }, (r.spec.dealers || []).join(", ")),
    h("td", {}, stateBadge(r.state, "result-state")),
    h("td", { class: "muted reason" }, r.reason)))
      : h("tr", {}, h("td", { colspan: 11, class: "empty" }, search.rows ? "No RFQ matches." : "Searching…")));
  };
  const form = h("form", { class: "search-bar", testid: "search-form",
    onsubmit: (e) => { e.preventDefault(); run(); } },
  field("Search", text), field("State", state), field("Requester", requester),
  field("From (UTC date)", from), field("To (UTC, inclusive)", to), h("div", { class: "field" }, today),
  h("button", { class: "btn primary", type: "submit", testid: "search-submit" }, "Search"));
  text.addEventListener("input", () => { search.text = text.value.trim(); render(); });

  clear(view, h("div", { class: "compliance" },
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "RFQ search"), note),
      h("div", { class: "panel-body" }, form),
      h("div", { class: "table-wrap" }, h("table", { class: "grid-table compact", testid: "search-results" },
        h("thead", {}, h("tr", {}, ["Created (UTC)", "RFQ", "Requester", "Mandate", "Side", "Package", "Qty",
          "Notional", "Dealers asked", "State", "Reason"].map((c, i) => h("th", { class: [6, 7].includes(i) ? "num" : "" }, c)))),
        results))),
    h("aside", { class: "side" },
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Audit chain")),
        h("div", { class: "panel-body" }, s.chainEl, exportButtons())))));
  if (search.rows) render();
  run();
}

// ---------------------------------------------------------------- the decision record

function mountRecord(view, rfqId) {
  s.recordId = rfqId;
  const body = h("div", { class: "record", testid: "decision-record", "data-rfq-id": rfqId },
    h("div", { class: "empty" }, `loading ${rfqId}…`));
  let timer = null;
  s.reload = () => { // live RFQs: re-read the record as events arrive (coalesced)
    clearTimeout(timer);
    timer = setTimeout(load, 250);
  };
  s.cleanup.push(() => clearTimeout(timer));
  const load = async () => {
    try {
      const [v, ev] = await Promise.all([api(`/api/v1/rfqs/${encodeURIComponent(rfqId)}`),
        api(`/api/v1/audit/events?rfq_id=${encodeURIComponent(rfqId)}&limit=10000`).catch(() => ({ events: [] }))]);
      if (s && s.recordId === rfqId) renderRecord(body, v, ev.events);
    } catch (err) {
      if (s) clear(body, h("div", { class: "empty bad" }, err.status === 404 ? `No RFQ ${rfqId}.` : err.message));
    }
  };
  clear(view, h("div", { class: "record-page" },
    h("div", { class: "crumbs" }, h("a", { href: "#/compliance", testid: "back-to-search" }, "← RFQ search"),
      h("span", { class: "muted" }, " / decision record")),
    h("div", { class: "record-grid" }, body,
      h("aside", { class: "side" },
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Audit chain")),
          h("div", { class: "panel-body" }, s.chainEl, exportButtons(rfqId),
            h("button", { class: "btn small ghost", type: "button", onclick: () => window.print() }, "Print record")))))));
  load();
}

const verdictChip = (v) => h("span", { class: `verdict ${v.passed ? "pass" : "fail"}`, title: v.reason,
  testid: "verdict-chip" }, `${v.passed ? "✓" : "✗"} ${v.rule}`);

function section(title, testid, ...content) {
  return h("section", { class: "panel rec-section", testid },
    h("div", { class: "panel-head" }, h("h2", {}, title)), h("div", { class: "panel-body" }, content));
}

function table(testid, headers, rows, numeric = []) {
  return h("table", { class: "grid-table compact", testid },
    h("thead", {}, h("tr", {}, headers.map((c, i) => h("th", { class: numeric.includes(i) ? "num" : "" }, c)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "none"))));
}

function renderRecord(el, view, events) {
  const rec = fromView(view);
  const d = view.decision || {};
  const spec = rec.spec || view.spec;
  const ccy = quoteCcy(spec);
  const side = d.side || rec.side;
  const { rows } = ladder(rec);
  const sentUs = tsMicros(rec.sent_at);
  const winner = (d.awards || []).find((a) => a.outcome === "confirmed");
  const since = (ts) => (ts && sentUs ? `+${fmtMs((tsMicros(ts) - sentUs) / 1000)}` : "");
  const live = LIVE.includes(view.state);

  // -- header
  const header = h("section", { class: "panel rec-header" },
    h("div", { class: "rec-title" },
      h("h1", {}, packageName(spec)),
      stateBadge(view.state, "record-state"),
      live ? h("span", { class: "pill neutral" }, "live: updating") : null),
    h("div", { class: "mono muted", testid: "record-id" }, view.rfq_id),
    h("p", { class: "rec-reason" }, view.reason || ""));

  // -- request
  const kv = (pairs) => h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  const request = section("Request", "record-request",
    kv([
      ["requester", rec.requester || spec.requester],
      ["mandate", spec.mandate],
      ["direction", directionText(spec)],
      ["quantity", h("span", { class: "mono" }, `${fmt(spec.quantity)} ${spec.quantity_unit}`)],
      ["notional", h("span", { class: "mono" }, `${fmt(rec.notional, 0)} ${ccy}`)],
      ["window", fmtMs(spec.window_ms)],
      ["partial fills", spec.allow_partial ? "allowed" : "not allowed"],
      spec.limit_price ? ["limit price", h("span", { class: "mono" }, fmtPrice(spec.limit_price))] : null,
      spec.client_rfq_id ? ["client id", h("span", { class: "mono" }, spec.client_rfq_id)] : null,
      ["submitted", h("span", { class: "mono" }, `${fmtDateTime(rec.submitted_at)}.${(rec.submitted_at || "").slice(20, 26)} UTC`)],
      rec.deadline ? ["window closed", h("span", { class: "mono" }, fmtTime(rec.deadline, 6))] : null,
    ]),
    table("record-legs", ["#", "Side", "Ratio", "Instrument"], (spec.legs || []).map((l, i) => h("tr", {},
      h("td", {}, String(i + 1)), h("td", {}, h("span", { class: `dir dir-${l.side}` }, l.side)),
      h("td", { class: "mono" }, l.ratio), h("td", {}, legText(l).replace(/^(buy|sell) /, ""))))));

  // -- result: winner, cover, fills, slippage vs reference
  const ref = rec.reference;
  const result = section("Result", "record-result",
    kv([
      ["winner", winner ? h("b", { testid: "record-winner" }, winner.dealer_id) : h("span", { testid: "record-winner", class: "muted" }, "none")],
      winner ? ["winning price", h("span", { class: "mono" }, `${side} ${fmtPrice(winner.price)} ${ccy}`)] : null,
      winner ? ["cover price", h("span", { class: "mono", testid: "record-cover" }, winner.cover_price ? fmtPrice(winner.cover_price) : "none (single quote)")] : null,
      ["filled", h("span", { class: "mono" }, `${fmt(d.filled_quantity ?? rec.filled_quantity)} of ${fmt(spec.quantity)} ${spec.quantity_unit}`)],
      ["average price", h("span", { class: "mono" }, d.average_price ? fmtPrice(d.average_price) : "—")],
      ["reference", ref ? h("span", { class: "mono", title: ref.value }, `${fmtPrice(ref.value)} (${ref.source}, as of ${fmtTime(ref.as_of)})`) : "none"],
      ref ? ["underlying", h("span", { class: "mono" }, fmt(ref.underlying_price))] : null,
      ["slippage vs ref", d.slippage_bps === null || d.slippage_bps === undefined ? "—"
        : h("span", { class: `mono ${d.slippage_bps.startsWith("-") ? "bad" : "good"}`, testid: "record-slippage",
          title: "bps of the underlying; positive = better for the requester than the reference" },
        `${fmt(d.slippage_bps, null, { sign: true })} bps`)],
      d.tca && d.tca.vs_award_bps ? ["slippage at award", h("span", { class: "mono" }, `${fmt(d.tca.vs_award_bps, null, { sign: true })} bps`)] : null,
      d.tca && d.tca.market_move_bps ? ["market move", h("span", { class: "mono", title: "how the reference moved between request and award, in the requester's terms" },
        `${fmt(d.tca.market_move_bps, null, { sign: true })} bps`)] : null,
    ]));

  // -- pre-trade rules
  const preTrade = section("Pre-trade checks", "record-pretrade",
    table("record-rules", ["Rule", "Verdict", "Reason"], (d.pre_trade || []).map((v) => h("tr", {
      testid: "rule-verdict", class: v.passed ? "" : "row-bad" },
    h("td", { class: "mono" }, v.rule), h("td", {}, verdictChip({ ...v, rule: v.passed ? "pass" : "fail" })),
    h("td", { class: "wrap" }, v.reason)))),
    d.approval && Object.keys(d.approval).length ? kv([
      ["approval", d.approval.decision ? `${d.approval.decision} by ${d.approval.by} at ${fmtTime(d.approval.at)}` : "requested, undecided"],
      d.approval.reason ? ["why needed", d.approval.reason] : null,
      d.approval.expires_at ? ["expires", h("span", { class: "mono", testid: "record-approval-expiry" },
        `${fmtDateTime(d.approval.expires_at)} UTC`)] : null,
      d.approval.note ? ["note", d.approval.note] : null,
    ]) : null);

  // -- dealers asked
  const answered = new Map();
  for (const q of rec.quotes) if (!answered.has(q.dealer_id)) answered.set(q.dealer_id, { what: "quoted", at: q.received_at });
  for (const x of rec.declines) if (!answered.has(x.dealer_id)) answered.set(x.dealer_id, { what: `declined: ${x.reason}`, at: x.at });
  const asked = [...(rec.dealers_asked || []), ...Object.keys(rec.send_failures || {})];
  const dealers = section(`Dealers asked (${asked.length})`, "record-dealers",
    table("dealers-asked", ["Dealer", "Sent", "Answer", "Response"], asked.map((dealer) => {
      const failed = rec.send_failures[dealer];
      const a = answered.get(dealer);
      return h("tr", { testid: "asked-row", "data-dealer": dealer },
        h("td", {}, dealer), h("td", {}, failed ? h("span", { class: "bad" }, `failed: ${failed}`) : "sent"),
        h("td", {}, a ? a.what : failed ? "—" : h("span", { class: "muted" }, live ? "waiting" : "no answer")),
        h("td", { class: "mono" }, a ? since(a.at) : ""));
    })));

  // -- quotes with times, status and each rule's verdict
  const quotes = section(`Quotes (${rec.quotes.length})`, "record-quotes",
    table("record-quote-table", ["Rank", "Dealer", "Bid", "Ask", "Qty", "Received (UTC)", "Resp.", "Valid until",
      "Status", "Rule verdicts"], rows.filter((r) => r.quote).map((r) => h("tr", {
      testid: "record-quote", "data-dealer": r.dealer_id, class: r.status === "valid" ? (r.award ? "row-win" : "") : "row-muted" },
    h("td", { class: "mono" }, r.rank ?? ""), h("td", {}, r.dealer_id),
    h("td", { class: "num mono" }, fmtPrice(r.quote.bid)), h("td", { class: "num mono" }, fmtPrice(r.quote.ask)),
    h("td", { class: "num mono" }, fmt(r.quote.quantity)),
    h("td", { class: "mono" }, fmtTime(r.quote.received_at, 6)),
    h("td", { class: "mono" }, since(r.quote.received_at)),
    h("td", { class: "mono" }, fmtTime(r.quote.valid_until, 3)),
    h("td", { class: `wrap ${r.status === "valid" ? "" : "bad"}`, testid: "record-quote-status" },
      r.status === "valid" ? (r.rank ? `ranked #${r.rank}` : "received") : `${r.status}${r.reason ? `: ${r.reason}` : ""}`,
      r.tie ? h("span", { class: "tie" }, ` · ${tieNote(r, fmtMs)}`) : null,
      // a coin premium: what it was converted at, as recorded in quote.received
      r.conversion ? h("div", { class: "muted mono wrap", testid: "record-quote-conversion" }, r.conversion) : null),
    h("td", { class: "wrap" }, r.verdicts.map(verdictChip)))), [2, 3, 4]),
    tieRule(rows) ? h("p", { class: "hint", testid: "record-tie-rule" }, tieRule(rows)) : null,
    d.min_quotes ? h("p", { class: "rule-line", testid: "rule-verdict" }, verdictChip(d.min_quotes), " ", d.min_quotes.reason) : null);

  // -- awards and fills
  const awards = section("Award and last look", "record-awards",
    table("record-award-table", ["Rank", "Dealer", "Side", "Price", "Cover", "Qty", "Decided", "Outcome", "Trade id", "Why"],
      (d.awards || []).map((a) => h("tr", { testid: "record-award", class: a.outcome === "confirmed" ? "row-win" : a.outcome === "pending" ? "" : "row-bad" },
        h("td", { class: "mono" }, `#${a.rank}`), h("td", {}, a.dealer_id), h("td", {}, a.side),
        h("td", { class: "num mono" }, fmtPrice(a.price)), h("td", { class: "num mono" }, a.cover_price ? fmtPrice(a.cover_price) : "—"),
        h("td", { class: "num mono" }, fmt(a.quantity)), h("td", { class: "mono" }, fmtTime(a.decided_at, 6)),
        h("td", {}, a.outcome + (a.reject_reason ? `: ${a.reject_reason}` : "")
          + (a.confirmed_at ? ` at ${fmtTime(a.confirmed_at)}` : "")),
        h("td", { class: "mono" }, a.dealer_trade_id || ""), h("td", { class: "wrap" }, a.reason))), [3, 4, 5]),
    table("record-fills", ["Fill", "Dealer", "Qty", "Price", "Notional", "Trade id", "At (UTC)"],
      (d.fills || []).map((f) => h("tr", { testid: "record-fill" },
        h("td", { class: "mono", title: f.fill_id }, shortId(f.fill_id)), h("td", {}, f.dealer_id),
        h("td", { class: "num mono" }, fmt(f.quantity)), h("td", { class: "num mono" }, fmtPrice(f.price)),
        h("td", { class: "num mono" }, fmt(f.notional, 0)), h("td", { class: "mono" }, f.dealer_trade_id),
        h("td", { class: "mono" }, fmtTime(f.at, 6)))), [2, 3, 4]),
    d.cancel ? h("p", { class: "bad" }, `cancel requested by ${d.cancel.by} at ${fmtTime(d.cancel.at)}: ${d.cancel.reason}`) : null,
    (d.messages_rejected || []).length ? h("p", { class: "muted" },
      `${d.messages_rejected.length} inbound message(s) rejected: `,
      d.messages_rejected.map((m) => `${m.dealer_id || "?"} (${m.reason})`).join("; ")) : null);

  // -- the audit trail
  const hashes = new Map((events || []).map((e) => [e.seq, e]));
  const trail = section("Audit trail", "record-trail",
    table("record-timeline", ["Seq", "Time (UTC)", "Event", "Actor", "Prev hash", "Hash"], (d.timeline || []).map((t) => {
      const e = hashes.get(t.seq);
      return h("tr", {},
        h("td", { class: "mono" }, String(t.seq)), h("td", { class: "mono" }, `${t.ts.slice(0, 10)} ${fmtTime(t.ts, 6)}`),
        h("td", { class: "mono" }, t.type), h("td", {}, t.actor),
        h("td", { class: "mono muted", title: e ? e.prev_hash : "" }, e ? `${e.prev_hash.slice(0, 12)}…` : ""),
        h("td", { class: "mono", title: e ? e.hash : "" }, e ? `${e.hash.slice(0, 12)}…` : ""));
    })),
    h("p", { class: "hint" }, "Each event's hash covers the previous event's hash, so a change to any event breaks every later link; the chain status on the right is the verification of the whole log."));

  clear(el, header,
    h("div", { class: "rec-cols" }, request, result),
    h("div", { class: "rec-cols" }, preTrade, dealers),
    quotes, awards, trail);
  if (TERMINAL.has(view.state) && s) s.reload = () => {};
}
