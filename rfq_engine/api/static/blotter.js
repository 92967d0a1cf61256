// The trader's blotter: the new-RFQ ticket, a live quote ladder per RFQ (countdown, quotes
// ranked as they arrive, rejected ones greyed with the reason, the award, last look and the
// fill), approve/refuse for approvers, and the RFQ history.

import { api } from "./api.js";
import { bps, fmt, fmtPrice, sub } from "./decimal.js";
import { averageFillPrice, fromSummary, ladder, tieNote, tieRule } from "./record.js";
import { Ticket } from "./ticket.js";
import {
  LIVE, TERMINAL, clear, debounce, directionText, fmtDateTime, fmtMs, fmtTime, h, packageName,
  quoteCcy, shortId, stateBadge, tsMicros, tsMillis,
} from "./util.js";

const MAX_FINISHED_CARDS = 6;
const HISTORY_PAGE = 100; // RFQs per page of GET /rfqs; "Load more" (or scrolling to it) follows `next`
const NOT_TRADED = ["not_filled", "cancelled", "expired", "rejected", "failed"];

let s = null; // the mounted page's state

export function mount(view, ctx) {
  s = { ctx, cards: new Map(), skew: null, refusing: new Map(), history: [],
    historyNext: null, historyPages: 0, historyQuery: 0, loadingMore: false,
    filter: { state: "all", mine: false, text: "" }, cleanup: [] };
  const canTrade = ctx.may("rfq:create");
  s.cardsEl = h("div", { class: "cards", testid: "live-rfqs" });
  s.liveCount = h("span", { class: "muted", testid: "live-count" });
  s.historyBody = h("tbody", {});
  s.historyNote = h("span", { class: "muted" });
  s.moreBtn = h("button", { class: "btn small ghost", type: "button", testid: "history-more",
    hidden: true, onclick: () => loadMoreHistory() }, "Load more");
  s.ticket = canTrade ? new Ticket(ctx, (v) => created(v)) : null;

  const stateSel = h("select", { class: "input small", testid: "history-state",
    onchange: (e) => { s.filter.state = e.target.value; loadHistory({ filtersChanged: true }); } },
  [["all", "All states"], ["live", "Live"], ["filled", "Filled"], ["partially_filled", "Partially filled"],
    ["not_traded", "Not traded"]].map(([v, t]) => h("option", { value: v }, t)));
  const mine = canTrade ? h("label", { class: "inline" }, h("input", { type: "checkbox", testid: "history-mine",
    onchange: (e) => { s.filter.mine = e.target.checked; loadHistory({ filtersChanged: true }); } }), " mine only") : null;
  const text = h("input", { class: "input small", placeholder: "filter: id, dealer, package…",
    testid: "history-filter", oninput: (e) => { s.filter.text = e.target.value.toLowerCase(); renderHistory(); } });

  clear(view, h("div", { class: `blotter ${canTrade ? "" : "no-ticket"}` },
    s.ticket ? s.ticket.el : null,
    h("section", { class: "panel live-panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Live RFQs"), s.liveCount,
        ctx.may("rfq:create") ? null : h("span", { class: "pill neutral" },
          ctx.may("rfq:approve") ? "approver: approve or refuse pending RFQs" : "read-only")),
      s.cardsEl),
    h("section", { class: "panel history-panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "RFQ history"), s.historyNote,
        h("div", { class: "spacer" }), text, stateSel, mine),
      s.historyWrap = h("div", { class: "table-wrap" }, h("table", { class: "grid-table", testid: "history-table" },
        h("thead", {}, h("tr", {}, ["Created (UTC)", "RFQ", "Requester", "Mandate", "Side", "Package",
          "Qty", "Notional", "Filled", "State", "Reason"].map((c, i) => h("th", { class: [6, 7, 8].includes(i) ? "num" : "" }, c)))),
        s.historyBody), h("div", { class: "history-more" }, s.moreBtn)))));

  const onChange = (e) => recordChanged(e.detail.id, e.detail.ev);
  ctx.records.addEventListener("change", onChange);
  s.cleanup.push(() => ctx.records.removeEventListener("change", onChange));
  const onEvent = (e) => {
    const sample = Date.now() - tsMillis(e.detail.at);
    if (!Number.isNaN(sample)) s.skew = s.skew === null ? sample : Math.min(s.skew, sample);
  };
  ctx.bus.addEventListener("event", onEvent);
  s.cleanup.push(() => ctx.bus.removeEventListener("event", onEvent));
  const onHalt = () => s.ticket && s.ticket.render();
  ctx.bus.addEventListener("halt", onHalt);
  s.cleanup.push(() => ctx.bus.removeEventListener("halt", onHalt));
  const onResync = () => { loadLive(true); loadHistory(); }; // after a reconnect: every card afresh
  ctx.bus.addEventListener("resync", onResync);
  s.cleanup.push(() => ctx.bus.removeEventListener("resync", onResync));
  if (typeof IntersectionObserver === "function") { // scrolling the table to its end loads the next page
    const seen = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) loadMoreHistory();
    }, { root: s.historyWrap });
    seen.observe(s.moreBtn);
    s.cleanup.push(() => seen.disconnect());
  }
  const timer = setInterval(tickCountdowns, 100);
  s.cleanup.push(() => clearInterval(timer));

  s.refreshHistory = debounce(loadHistory, 300);
  for (const id of ctx.shownCards) renderCard(id);
  loadLive();
  loadHistory();
}

export function unmount() {
  if (!s) return;
  for (const fn of s.cleanup) fn();
  s = null;
}

// ---------------------------------------------------------------- data

async function loadLive(rebuild = false) {
  const ctx = s.ctx;
  const query = LIVE.map((st) => `state=${st}`).join("&");
  try {
    const { rfqs } = await api(`/api/v1/rfqs?${query}&limit=100`);
    for (const row of rfqs.reverse()) {
      show(row.rfq_id, false);
      const known = ctx.records.get(row.rfq_id);
      if (!known || known.summaryOnly) {
        if (!known) ctx.records.map.set(row.rfq_id, fromSummary(row));
        ctx.records.load(row.rfq_id).catch(() => {});
      }
    }
    renderCards(rebuild);
  } catch (err) {
    ctx.toast(`live RFQs: ${err.message}`, "error");
  }
}

function historyParams() {
  const f = s.filter;
  const params = [`limit=${HISTORY_PAGE}`];
  const states = f.state === "live" ? LIVE : f.state === "not_traded" ? NOT_TRADED
    : f.state === "all" ? [] : [f.state];
  for (const st of states) params.push(`state=${st}`);
  if (f.mine) params.push(`requester=${encodeURIComponent(s.ctx.me.name)}`);
  return params;
}

// Newest first, as the API pages them: (created_at, rfq_id) descending.
function newestFirst(a, b) {
  if (a.created_at !== b.created_at) return a.created_at < b.created_at ? 1 : -1;
  return a.rfq_id < b.rfq_id ? 1 : a.rfq_id > b.rfq_id ? -1 : 0;
}

// The first page again (a filter changed, or an RFQ did). With the same filters the pages
// already followed stay when the new first page reaches them (no RFQ can be missing in
// between): its rows replace theirs, the older ones are kept, and so is the cursor of the
// last page read. Otherwise the history starts again from the new first page.
async function loadHistory({ filtersChanged = false } = {}) {
  if (!s) return;
  const query = filtersChanged ? ++s.historyQuery : s.historyQuery;
  try {
    const { rfqs, next } = await api(`/api/v1/rfqs?${historyParams().join("&")}`);
    if (!s || query !== s.historyQuery) return; // the filters changed meanwhile
    const known = new Set(s.history.map((r) => r.rfq_id));
    const joins = !next || rfqs.some((r) => known.has(r.rfq_id));
    if (filtersChanged || s.historyPages <= 1 || !joins) {
      if (filtersChanged) s.historyWrap.scrollTop = 0;
      s.history = rfqs;
      s.historyNext = next;
      s.historyPages = 1;
    } else {
      const fresh = new Set(rfqs.map((r) => r.rfq_id));
      const oldest = rfqs.length ? rfqs[rfqs.length - 1] : null;
      const older = s.history.filter((r) => !fresh.has(r.rfq_id) && (!oldest || newestFirst(oldest, r) < 0));
      s.history = rfqs.concat(older).sort(newestFirst);
      if (!next) s.historyNext = null; // everything there is fits on the first page
    }
    renderHistory();
  } catch (err) {
    s.ctx.toast(`history: ${err.message}`, "error");
  }
}

// The page after the last one read: the same filters, `after` = that page's `next`.
async function loadMoreHistory() {
  if (!s || !s.historyNext || s.loadingMore) return;
  const query = s.historyQuery;
  const after = s.historyNext;
  s.loadingMore = true;
  renderMore();
  try {
    const { rfqs, next } = await api(`/api/v1/rfqs?${historyParams().join("&")}&after=${encodeURIComponent(after)}`);
    if (!s || query !== s.historyQuery || after !== s.historyNext) return;
    const known = new Set(s.history.map((r) => r.rfq_id));
    s.history = s.history.concat(rfqs.filter((r) => !known.has(r.rfq_id)));
    s.historyNext = next;
    s.historyPages += 1;
    renderHistory();
  } catch (err) {
    s.ctx.toast(`history: ${err.message}`, "error");
  } finally {
    if (s) { s.loadingMore = false; renderMore(); }
  }
}

function renderMore() {
  s.moreBtn.hidden = !s.historyNext;
  s.moreBtn.disabled = s.loadingMore;
  s.moreBtn.textContent = s.loadingMore ? "Loading…" : `Load ${HISTORY_PAGE} more`;
}

function created(view) {
  const rec = s.ctx.records.seed(view);
  show(view.rfq_id, true);
  s.ctx.toast(`RFQ ${shortId(view.rfq_id)} sent: ${packageName(rec.spec)}`, "info");
  s.refreshHistory();
}

function show(id, render = true) {
  const list = s.ctx.shownCards;
  if (!list.includes(id)) list.unshift(id);
  pruneFinished();
  if (render) renderCards();
}

// keep every live card, and only the newest few finished ones; run when a card is added
// and when an RFQ ends (after a burst, the ended ones must not stay on the page)
function pruneFinished() {
  const list = s.ctx.shownCards;
  let finished = 0;
  for (let i = 0; i < list.length; i++) {
    const rec = s.ctx.records.get(list[i]);
    if (rec && TERMINAL.has(rec.state) && ++finished > MAX_FINISHED_CARDS) list.splice(i--, 1);
  }
}

function recordChanged(id, ev) {
  if (!s) return;
  if (ev && ev.type === "rfq.submitted") {
    show(id);
    s.refreshHistory();
    return;
  }
  if (s.ctx.shownCards.includes(id)) renderCard(id);
  if (ev && ev.type === "rfq.state_changed") {
    renderHistory();
    s.refreshHistory();
    if (TERMINAL.has(ev.payload.to)) {
      const before = s.ctx.shownCards.length;
      pruneFinished();
      if (s.ctx.shownCards.length !== before) renderCards();
      // reconcile with the server's record (average price, slippage) once it is final
      setTimeout(() => s && s.ctx.records.load(id).catch(() => {}), 150);
    }
  }
}

// ---------------------------------------------------------------- cards

function renderCards(rebuild = false) {
  const ids = s.ctx.shownCards;
  const live = ids.filter((id) => { const r = s.ctx.records.get(id); return r && !TERMINAL.has(r.state); });
  const pending = live.filter((id) => s.ctx.records.get(id).state === "pending_approval").length;
  s.liveCount.textContent = `${live.length} live${pending ? ` · ${pending} awaiting approval` : ""}`;
  const wanted = new Set(ids);
  for (const [id, el] of s.cards) if (!wanted.has(id)) { el.remove(); s.cards.delete(id); }
  if (!ids.length) {
    clear(s.cardsEl, h("div", { class: "empty" }, s.ctx.may("rfq:create")
      ? "No live RFQs. Pick a template and request quotes." : "No live RFQs."));
    return;
  }
  s.cardsEl.querySelector(".empty")?.remove();
  // build only the cards not on the page yet (a card already shown is rebuilt by
  // renderCard when its RFQ changes): rebuilding every card for each new RFQ made a
  // burst of a hundred RFQs quadratic and the page unresponsive for seconds
  for (const id of ids) {
    const old = s.cards.get(id);
    if (old && !rebuild) continue;
    const el = buildCard(id);
    if (old) old.replaceWith(el);
    s.cards.set(id, el);
  }
  let at = s.cardsEl.firstElementChild;
  for (const id of ids) { // order: newest first; move only what is out of place
    const el = s.cards.get(id);
    if (el === at) at = at.nextElementSibling;
    else s.cardsEl.insertBefore(el, at);
  }
}

function renderCard(id) {
  if (!s.cards.has(id)) { renderCards(); return; }
  const el = buildCard(id);
  s.cards.get(id).replaceWith(el);
  s.cards.set(id, el);
  const live = s.ctx.shownCards.filter((x) => { const r = s.ctx.records.get(x); return r && !TERMINAL.has(r.state); });
  const pending = live.filter((x) => s.ctx.records.get(x).state === "pending_approval").length;
  s.liveCount.textContent = `${live.length} live${pending ? ` · ${pending} awaiting approval` : ""}`;
}

function deadlineLocal(rec) {
  return rec.deadline ? tsMillis(rec.deadline) + (s.skew || 0) : null;
}

function paintCountdown(el, now) {
  const end = Number(el.dataset.deadline);
  const total = Number(el.dataset.window) || 1;
  const left = Math.max(0, end - now);
  const text = el.querySelector(".cd-text");
  if (text) text.textContent = left > 0 ? `${(left / 1000).toFixed(1)}s` : "0.0s";
  const bar = el.querySelector(".cd-fill");
  if (bar) bar.style.width = `${Math.min(100, (left / total) * 100)}%`;
  el.classList.toggle("urgent", left < 1000);
}

function tickCountdowns() {
  if (!s) return;
  const now = Date.now();
  for (const el of s.cardsEl.querySelectorAll("[data-deadline]")) paintCountdown(el, now);
  for (const el of s.cardsEl.querySelectorAll("[data-expires]")) paintExpiry(el, now);
}

function priceLabel(side) {
  return side === "bid" ? "Bid" : "Ask";
}

function buildCard(id) {
  const ctx = s.ctx;
  const rec = ctx.records.get(id);
  if (!rec || !rec.spec) {
    return h("article", { class: "card loading", testid: "rfq-card", "data-rfq-id": id },
      h("div", { class: "card-head" }, h("span", { class: "muted" }, `loading ${shortId(id)}…`)));
  }
  const spec = rec.spec;
  const { side, rows } = ladder(rec);
  const ccy = quoteCcy(spec);
  const open = rec.state === "open";
  const direction = spec.direction === "two_way" ? spec.private_side : spec.direction;
  const best = rows.find((r) => r.status === "valid");
  const sentUs = tsMicros(rec.sent_at);

  let countdown = null;
  if (open && rec.deadline) {
    countdown = h("div", { class: "countdown", testid: "countdown",
      "data-deadline": String(deadlineLocal(rec)), "data-window": String(rec.window_ms || 1) },
    h("span", { class: "cd-label" }, "closes in"), h("span", { class: "cd-text mono" }),
    h("span", { class: "cd-bar" }, h("span", { class: "cd-fill" })));
    paintCountdown(countdown, Date.now());
  }

  const head = h("div", { class: "card-head" },
    h("div", { class: "card-title" },
      h("span", { class: `dir dir-${direction}` }, directionText(spec).toUpperCase()),
      h("b", { class: "mono" }, `${fmt(spec.quantity)} ${spec.quantity_unit}`),
      h("span", { class: "pkg" }, packageName(spec)),
      h("span", { class: "muted" }, `· ${rec.requester || spec.requester} · ${spec.mandate}`)),
    h("div", { class: "card-meta" },
      countdown,
      stateBadge(rec.state),
      ctx.may("audit:read") ? h("a", { class: "id-link mono", href: `#/compliance/${id}`,
        title: "open the decision record" }, shortId(id)) : h("span", { class: "mono muted", title: id }, shortId(id)),
      TERMINAL.has(rec.state) ? h("button", { class: "icon-btn", title: "dismiss", type: "button",
        onclick: () => { ctx.shownCards.splice(ctx.shownCards.indexOf(id), 1); renderCards(); } }, "×") : null));

  const info = h("div", { class: "card-info mono" },
    `notional ${fmt(rec.notional, 0)} ${ccy}`,
    rec.reference ? ` · ref ${fmtPrice(rec.reference.value)}` : "",
    ` · ${rec.dealers_asked.length || spec.dealers.length} dealers`,
    rec.window_ms ? ` · window ${fmtMs(rec.window_ms)}` : "",
    rec.sent_at ? ` · sent ${fmtTime(rec.sent_at)}` : "");

  const body = h("tbody", {}, rows.map((r) => {
    const award = r.award;
    let status = r.status;
    const cover = rec.awards.some((a) => a.cover_price && a.dealer_id !== r.dealer_id && a.cover_price === r.price);
    const unawarded = TERMINAL.has(rec.state) && !rec.awards.length;
    let statusText = { valid: unawarded ? "not awarded" : r.rank === 1 ? "best" : cover ? "cover" : rec.ranked ? "ranked" : "valid",
      rejected: `rejected: ${r.reason}`,
      superseded: "superseded", declined: `declined${r.reason ? `: ${r.reason}` : ""}`, waiting: "awaiting quote",
      no_answer: "no answer", not_reached: `not reached: ${r.reason}` }[r.status];
    if (award) {
      const outcome = { pending: "awarded · last look", confirmed: "filled", rejected: `last look rejected: ${award.reject_reason || ""}`,
        timed_out: "last look timed out" }[award.outcome] || award.outcome;
      statusText = outcome;
      status = award.outcome === "confirmed" ? "filled" : award.outcome === "pending" ? "awarded" : "lastlook_rejected";
    }
    let vsBest = "";
    if (r.status === "valid" && best && best !== r) {
      const diff = side === "bid" ? sub(best.price, r.price) : sub(r.price, best.price);
      vsBest = diff === null ? "" : fmtPrice(diff, { sign: true });
    } else if (r.status === "valid" && best === r) vsBest = "—";
    const after = r.received_at && sentUs ? (tsMicros(r.received_at) - sentUs) / 1000 : null;
    // vs the reference, bps of the underlying; positive = better for the requester
    const ref = rec.reference;
    const vsRef = ref && r.price !== null && r.price !== undefined && r.quote
      ? (side === "bid" ? bps(r.price, ref.value, ref.underlying_price) : bps(ref.value, r.price, ref.underlying_price))
      : null;
    return h("tr", { class: `q q-${status}`, testid: "quote-row", "data-dealer": r.dealer_id,
      "data-status": status, title: r.reason || "" },
    h("td", { class: "rank mono", testid: "quote-rank" }, r.rank ?? ""),
    h("td", { class: "dealer" }, r.dealer_id),
    h("td", { class: "num mono price" }, r.status === "waiting" ? h("span", { class: "spinner" }) : fmtPrice(r.price)),
    h("td", { class: "num mono" }, r.quantity ? fmt(r.quantity) : ""),
    h("td", { class: "num mono muted" }, vsBest),
    h("td", { class: `num mono ${vsRef === null ? "" : vsRef.startsWith("-") ? "neg" : "pos"}` },
      vsRef === null ? "" : fmt(vsRef, 1, { sign: true })),
    h("td", { class: "num mono muted" }, after === null ? "" : `+${fmtMs(after)}`),
    h("td", { class: "mono muted" }, r.valid_until ? fmtTime(r.valid_until, 1) : ""),
    h("td", { class: "status" }, statusText,
      r.tie ? h("span", { class: "tie", testid: "quote-tie" }, ` · ${tieNote(r, fmtMs)}`) : null));
  }));
  const table = h("table", { class: "ladder", testid: "ladder" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Dealer"),
      h("th", { class: "num" }, `${priceLabel(side)} (${ccy})`), h("th", { class: "num" }, "Qty"),
      h("th", { class: "num" }, "vs best"),
      h("th", { class: "num", title: "bps of the underlying; positive = better than the reference" }, "vs ref bps"),
      h("th", { class: "num" }, "Resp."), h("th", {}, "Valid to"),
      h("th", {}, "Status"))),
    body);

  const ties = tieRule(rows);
  const foot = h("div", { class: "card-foot" });
  for (const a of rec.awards) {
    foot.appendChild(h("div", { class: `award award-${a.outcome}`, testid: "award" },
      h("span", { class: "tag" }, "AWARD"),
      `#${a.rank} ${a.dealer_id} ${a.side} ${fmtPrice(a.price)} × ${fmt(a.quantity)}`,
      a.cover_price ? ` · cover ${fmtPrice(a.cover_price)}` : "",
      ` · ${{ pending: "in last look", confirmed: "confirmed", rejected: "rejected on last look", timed_out: "last look timed out",
        unknown: "outcome unknown: asking the dealer", unresolved: "UNRESOLVED: the dealer may have executed" }[a.outcome] || a.outcome}`,
      a.reject_reason ? `: ${a.reject_reason}` : "",
      a.resolution ? ` · resolved by ${a.resolution.resolved_by} (${a.resolution.evidence})` : ""));
    if (a.outcome === "unresolved") foot.appendChild(resolveBox(rec, a));
  }
  if (rec.fills.length) {
    const avg = averageFillPrice(rec);
    const dealers = [...new Set(rec.fills.map((f) => f.dealer_id))].join(", ");
    const notional = rec.fills.length === 1 ? rec.fills[0].notional : null;
    foot.appendChild(h("div", { class: "fill", testid: "fill" },
      h("span", { class: "tag good" }, rec.state === "partially_filled" ? "PARTIAL FILL" : "FILLED"),
      h("b", { class: "mono" }, `${fmt(rec.filled_quantity)} ${spec.quantity_unit}`),
      avg ? ` @ ${fmtPrice(avg)} ${ccy}` : "",
      ` with ${dealers}`,
      notional ? ` · notional ${fmt(notional, 0)}` : "",
      rec.slippage_bps !== null && rec.slippage_bps !== undefined ? ` · vs ref ${fmt(rec.slippage_bps, null, { sign: true })} bps` : "",
      ` · ${rec.fills.map((f) => f.dealer_trade_id).join(", ")}`));
  } else if (TERMINAL.has(rec.state)) {
    foot.appendChild(h("div", { class: "outcome bad", testid: "outcome" },
      h("span", { class: "tag bad" }, rec.state.replace(/_/g, " ").toUpperCase()), rec.reason || ""));
  }
  if (rec.state === "pending_approval") {
    foot.appendChild(approvalBox(rec));
  }
  const actions = [];
  const mine = (rec.requester || spec.requester) === ctx.me.name;
  if (!TERMINAL.has(rec.state) && ctx.may("rfq:cancel") && (mine || ctx.may("admin:halt"))) {
    actions.push(h("button", { class: "btn small ghost", type: "button", testid: "cancel-rfq",
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          await api(`/api/v1/rfqs/${id}/cancel`, { method: "POST", body: { reason: `cancelled by ${ctx.me.name}` } });
        } catch (err) { ctx.toast(`cancel: ${err.message}`, "error"); }
      } }, "Cancel RFQ"));
  }
  if (actions.length) foot.appendChild(h("div", { class: "actions" }, actions));

  const toAsk = rows.length ? null : h("div", { class: "card-info" },
    `dealers to ask: ${spec.dealers.join(", ")}`);
  return h("article", { class: `card cs-${rec.state}`, testid: "rfq-card", "data-rfq-id": id,
    "data-state": rec.state },
  head, info, rows.length ? table : toAsk,
  ties ? h("p", { class: "tie-rule", testid: "tie-rule" }, ties) : null,
  foot.childNodes.length ? foot : null);
}

function approvalBox(rec) {
  const ctx = s.ctx;
  const a = rec.approval || {};
  const mine = (rec.requester || rec.spec.requester) === ctx.me.name;
  const why = h("span", {}, h("span", { class: "tag warn" }, "APPROVAL"),
    a.reason || rec.reason || (a.notional ? `notional ${fmt(a.notional)} above ${fmt(a.threshold)}` : "needs a second person's approval"));
  const expiry = expiryNote(a.expires_at);
  if (!ctx.may("rfq:approve")) return h("div", { class: "approval" }, why, expiry, h("span", { class: "muted" }, " · waiting for an approver"));
  if (mine) return h("div", { class: "approval" }, why, expiry, h("span", { class: "muted" }, " · your own RFQ: another approver decides"));
  const reason = h("input", { class: "input small", placeholder: "reason to refuse", testid: "refuse-reason",
    value: s.refusing.get(rec.rfq_id) || "", oninput: (e) => s.refusing.set(rec.rfq_id, e.target.value) });
  const act = (grant) => async (e) => {
    const text = reason.value.trim();
    if (!grant && !text) { reason.focus(); reason.classList.add("invalid"); return; }
    e.currentTarget.disabled = true;
    try {
      await api(`/api/v1/rfqs/${rec.rfq_id}/${grant ? "approve" : "refuse"}`, { method: "POST",
        body: grant ? {} : { reason: text } });
      ctx.toast(`${grant ? "Approved" : "Refused"} ${shortId(rec.rfq_id)}`, "info");
    } catch (err) {
      ctx.toast(`${grant ? "approve" : "refuse"}: ${err.message}`, "error");
      e.currentTarget.disabled = false;
    }
  };
  return h("div", { class: "approval" }, why, expiry,
    h("div", { class: "actions" },
      h("button", { class: "btn small good", type: "button", testid: "approve", onclick: act(true) }, "Approve"),
      reason,
      h("button", { class: "btn small danger", type: "button", testid: "refuse", onclick: act(false) }, "Refuse")));
}

// When an approval request lapses (the RFQ then ends expired): the time in UTC, and how long
// is left, kept current by the countdown tick.
function expiryNote(at) {
  if (!at) return null;
  const el = h("span", { class: "approval-expiry", testid: "approval-expiry", title: at,
    "data-expires": String(tsMillis(at) + (s.skew || 0)) },
  "expires ", h("b", { class: "mono" }, `${fmtDateTime(at)} UTC`), h("span", { class: "exp-left mono" }));
  paintExpiry(el, Date.now());
  return el;
}

function paintExpiry(el, now) {
  const left = Number(el.dataset.expires) - now;
  const secs = Math.max(0, Math.ceil(left / 1000));
  const text = left <= 0 ? " · lapsed" : secs >= 3600 ? ` · in ${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`
    : ` · in ${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, "0")}`;
  const out = el.querySelector(".exp-left");
  if (out.textContent !== text) out.textContent = text;
  el.classList.toggle("urgent", left < 60_000);
}

function resolveBox(rec, award) {
  // A person's decision on an award whose outcome could not be reconciled
  // (runbooks/unresolved-execution.md): POST .../executions/{id}/resolve.
  const ctx = s.ctx;
  const mine = (rec.requester || rec.spec.requester) === ctx.me.name;
  const why = h("span", {}, h("span", { class: "tag bad" }, "UNRESOLVED"),
    "do not re-send: find out from the dealer, then record what happened");
  if (!ctx.may("rfq:resolve")) return h("div", { class: "approval", testid: "resolve" }, why,
    h("span", { class: "muted" }, " · an approver or admin resolves it"));
  if (mine) return h("div", { class: "approval", testid: "resolve" }, why,
    h("span", { class: "muted" }, " · your own RFQ: another person resolves it"));
  const evidence = h("input", { class: "input small", placeholder: "evidence (blotter ref, call)", testid: "resolve-evidence" });
  const trade = h("input", { class: "input small", placeholder: "dealer trade id (if executed)", testid: "resolve-trade-id" });
  const act = (executed) => async (e) => {
    const text = evidence.value.trim();
    if (!text) { evidence.focus(); evidence.classList.add("invalid"); return; }
    if (executed && !trade.value.trim()) { trade.focus(); trade.classList.add("invalid"); return; }
    e.currentTarget.disabled = true;
    try {
      await api(`/api/v1/rfqs/${rec.rfq_id}/executions/${award.execution_id}/resolve`, { method: "POST",
        body: executed ? { executed: true, evidence: text, dealer_trade_id: trade.value.trim() }
          : { executed: false, evidence: text } });
      ctx.toast(`Resolved ${shortId(award.execution_id)}: ${executed ? "executed" : "not executed"}`, "info");
    } catch (err) {
      ctx.toast(`resolve: ${err.message}`, "error");
      e.currentTarget.disabled = false;
    }
  };
  return h("div", { class: "approval", testid: "resolve" }, why,
    h("div", { class: "actions" }, evidence, trade,
      h("button", { class: "btn small good", type: "button", testid: "resolve-executed", onclick: act(true) }, "Executed"),
      h("button", { class: "btn small danger", type: "button", testid: "resolve-not-executed", onclick: act(false) }, "Not executed")));
}

// ---------------------------------------------------------------- history

function matches(row, text) {
  if (!text) return true;
  const hay = [row.rfq_id, row.client_rfq_id, row.requester, row.mandate, row.state, row.reason,
    packageName(row.spec), ...(row.spec.dealers || [])].join(" ").toLowerCase();
  return hay.includes(text);
}

// A row as the list returned it, brought up to date by the live record when the stream
// has moved it on since (the list reads the store, which trails the stream a little).
function current(row) {
  const rec = s.ctx.records.get(row.rfq_id);
  if (!rec || rec.summaryOnly || !rec.spec || TERMINAL.has(row.state)) return row;
  return { ...row, state: rec.state, reason: rec.reason, filled_quantity: rec.filled_quantity };
}

function renderHistory() {
  if (!s) return;
  const rows = s.history.map(current).filter((r) => matches(r, s.filter.text));
  s.historyNote.textContent = `${rows.length} of ${s.history.length}${s.historyNext ? "+" : ""}`;
  renderMore();
  clear(s.historyBody, rows.length ? rows.map((r) => h("tr", {
    class: `clickable st-row-${r.state}`, testid: "history-row", "data-rfq-id": r.rfq_id,
    title: "show the ladder", onclick: () => openCard(r) },
  h("td", { class: "mono" }, fmtDateTime(r.created_at)),
  h("td", { class: "mono" }, s.ctx.may("audit:read") ? h("a", { href: `#/compliance/${r.rfq_id}`,
    onclick: (e) => e.stopPropagation(), title: "decision record" }, shortId(r.rfq_id)) : shortId(r.rfq_id)),
  h("td", {}, r.requester), h("td", {}, r.mandate),
  h("td", {}, h("span", { class: `dir dir-${r.direction === "two_way" ? r.spec.private_side : r.direction}` },
    directionText(r.spec))),
  h("td", {}, packageName(r.spec)),
  h("td", { class: "num mono" }, `${fmt(r.quantity)} ${r.quantity_unit}`),
  h("td", { class: "num mono" }, fmt(r.notional, 0)),
  h("td", { class: "num mono" }, fmt(r.filled_quantity)),
  h("td", {}, stateBadge(r.state, "history-state-badge")),
  h("td", { class: "muted reason" }, r.reason))) : h("tr", {}, h("td", { colspan: 11, class: "empty" }, "No RFQs.")));
}

async function openCard(row) {
  const ctx = s.ctx;
  const known = ctx.records.get(row.rfq_id);
  if (!known || known.summaryOnly || !known.spec) {
    ctx.records.map.set(row.rfq_id, known || fromSummary(row));
    ctx.records.load(row.rfq_id).catch((err) => ctx.toast(err.message, "error"));
  }
  if (!ctx.shownCards.includes(row.rfq_id)) ctx.shownCards.unshift(row.rfq_id);
  renderCards();
  s.cards.get(row.rfq_id)?.scrollIntoView({ behavior: "smooth", block: "nearest" });
}
