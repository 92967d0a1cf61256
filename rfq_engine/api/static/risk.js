// The Risk page (GET /api/v1/hedge/risk): the active alerts, counterparty exposure against
// credit lines, desk and venue margin, coverage, liquidity, and each program's hedge P&L
// beside the unhedged value of its production, with charts. The banner (every page) polls
// GET /api/v1/hedge/risk/alerts and shows the active alerts.

import { api } from "./api.js";
import { barChart, compact, lineChart } from "./charts.js";
import { fmt, fmtRate, toNumber } from "./decimal.js";
import { clear, fmtDateTime, h } from "./util.js";

let s = null;
let bannerTimer = null;
const BANNER_MS = 60000;

export function mount(view, ctx) {
  s = { ctx };
  const body = h("div", { class: "risk", testid: "risk" }, h("div", { class: "empty" }, "loading…"));
  clear(view, h("div", { class: "risk-page" },
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Risk"),
        h("span", { class: "muted", testid: "risk-as-of" })),
      body)));
  load(body, view);
}

export function unmount() {
  s = null;
}

function table(testid, head, rows, rowid) {
  if (!rows.length) return h("div", { class: "empty", testid: `${testid}-empty` }, "none");
  return h("table", { class: "grid-table", testid },
    h("thead", {}, h("tr", {}, head.map(([title], i) => h("th", { class: i ? "num" : "" }, title)))),
    h("tbody", {}, rows.map((r) => h("tr", { testid: `${testid}-row`, "data-key": rowid(r) },
      head.map(([, cell], i) => h("td", { class: i ? "num mono" : "" }, cell(r)))))));
}

const money = (v) => (v === null || v === undefined ? "—" : fmt(v, 2));
const rate = (v) => (v === null || v === undefined ? "—" : fmtRate(v));

function alertList(active) {
  if (!active.length) return h("div", { class: "empty", testid: "risk-no-alerts" }, "no active alert");
  return h("ul", { class: "risk-alerts", testid: "risk-alerts" }, active.map((a) =>
    h("li", { class: "bad", testid: "risk-alert", "data-kind": a.kind, "data-subject": a.subject },
      h("b", {}, `${a.kind} · ${a.subject}: `), a.message)));
}

function performance(p) {
  const rows = p.periods;
  const bar = (label, v) => ({ label, value: toNumber(v ?? "0"), text: compact(toNumber(v ?? "0")) });
  const chart = rows.length ? h("div", { class: "risk-chart" },
    h("div", { class: "muted" }, "production value (USD): U unhedged, H hedged"),
    barChart(rows.flatMap((r) => [bar(`U ${r.period}`, r.unhedged_value), bar(`H ${r.period}`, r.hedged_value)]),
      { testid: "risk-value-chart", title: `${p.program}: production value, unhedged and hedged (USD)`,
        format: compact })) : null;
  // the curve starts at 0 before the first fill
  const points = [[0, 0], ...p.timeline.map((t, i) => [i + 1, toNumber(t.pnl)])];
  const curve = points.length > 1 ? lineChart({
    series: [{ name: "P&L", cls: "hedged", points }], testid: "risk-pnl-chart",
    xLabel: "fills, in order", yLabel: "P&L at today's marks (USD)",
    title: `${p.program}: P&L over time` }) : null;
  return h("article", { class: "panel", testid: "risk-program", "data-program": p.program },
    h("div", { class: "panel-head" }, h("h3", {}, p.program),
      h("span", { class: "muted" }, `${p.strategy} · price now ${fmt(p.price)} · hedge P&L ${money(p.totals.hedge_pnl)} USD`)),
    table("risk-performance", [
      ["Period", (r) => r.period], ["Forecast", (r) => `${fmt(r.forecast, 4)} ${r.unit}`],
      ["Realized", (r) => (r.realized === null ? "—" : `${fmt(r.realized, 4)} ${r.unit}`)],
      ["Unhedged value", (r) => money(r.unhedged_value)], ["Hedge P&L", (r) => money(r.hedge_pnl)],
      ["Hedged value", (r) => money(r.hedged_value)], ["Fills", (r) => String(r.fills)]], rows, (r) => r.period),
    h("div", { class: "risk-charts" }, chart, curve));
}

async function load(body, view) {
  let data;
  try {
    data = await api("/api/v1/hedge/risk");
  } catch (err) {
    clear(body, h("div", { class: "empty bad" }, err.message));
    return;
  }
  if (!s) return;
  const r = data.risk;
  const asOf = view.querySelector("[data-testid=risk-as-of]");
  if (asOf) asOf.textContent = `as of ${fmtDateTime(data.as_of)} · BTC ${fmt(r.btc_price)}`;
  clear(body,
    h("h3", {}, "Alerts"), alertList(data.active),
    h("h3", {}, "Counterparties: exposure against credit lines"),
    table("risk-counterparties", [
      ["Dealer", (c) => c.dealer], ["MTM", (c) => money(c.mtm_usd)], ["Initial margin", (c) => money(c.initial_margin_usd)],
      ["Exposure", (c) => money(c.exposure_usd)], ["Credit line", (c) => money(c.credit_line)],
      ["Usage", (c) => rate(c.usage)]], r.counterparties, (c) => c.dealer),
    r.counterparties.length ? h("div", { class: "risk-chart" }, barChart(r.counterparties.map((c) => ({ label: c.dealer,
      value: c.usage === null ? null : toNumber(c.usage) * 100, text: rate(c.usage) })),
    { max: 100, testid: "risk-credit-chart", title: "credit line used (%)", tone: "neutral", format: (v) => `${v}%` })) : null,
    h("h3", {}, "OTC desks: margin"),
    table("risk-desks", [
      ["Desk", (d) => d.dealer], ["Required", (d) => money(d.required_usd)], ["Posted", (d) => money(d.posted_value_usd)],
      ["Usage", (d) => rate(d.usage)], ["Call", (d) => `${d.call.kind} ${money(d.call.usd)}`],
      ["Posted from", collateralSource]], r.desks, (d) => d.dealer),
    h("h3", {}, "Venues: margin and liquidation"),
    table("risk-venues", [
      ["Position", (v) => `${v.venue} ${v.instrument}`], ["Equity", (v) => `${fmt(v.equity, 8)} ${v.currency}`],
      ["Initial", (v) => fmt(v.initial_margin, 8)], ["Maintenance", (v) => fmt(v.maintenance_margin, 8)],
      ["Usage", (v) => rate(v.usage)], ["Call", (v) => `${fmt(v.call, 8)} (${money(v.call_usd)})`],
      ["Liquidation", (v) => money(v.liquidation_price)], ["Distance", (v) => rate(v.distance)],
      ["Source", venueSource], ["Posted from", collateralSource]],
    r.venues, (v) => `${v.venue}:${v.instrument}`),
    h("h3", {}, "Funding (estimate)"),
    table("risk-funding", [
      ["Perpetual", (f) => `${f.venue} ${f.instrument}`], ["Position", (f) => fmt(f.quantity)],
      ["Rate", (f) => fmt(f.rate)], ["Paid per day", (f) => money(f.paid_usd_per_day)]],
    r.funding, (f) => `${f.venue}:${f.instrument}`),
    h("h3", {}, "Funding paid so far (estimate: the configured rate at today's mark)"),
    table("risk-funding-accrued", [
      ["Perpetual", (f) => `${f.dealer} ${f.instrument}`], ["Since", (f) => f.since], ["Intervals", (f) => f.intervals ?? ""],
      ["Rate", (f) => (f.rate === null ? f.note : fmt(f.rate))],
      ["Paid", (f) => (f.paid === null ? "" : `${fmt(f.paid, 8)} ${f.currency}`)], ["Paid (USD)", (f) => money(f.paid_usd)]],
    r.funding_accrued || [], (f) => `${f.dealer}:${f.instrument}:${f.inverse}`),
    h("h3", {}, "Coverage of this month"),
    table("risk-coverage", [
      ["Program", (c) => c.program], ["Forecast", (c) => `${fmt(c.forecast, 4)} ${c.unit}`],
      ["Hedged", (c) => `${fmt(c.hedged, 4)} ${c.unit}`], ["Coverage", (c) => rate(c.coverage)],
      ["Target", (c) => rate(c.target_ratio)]], r.coverage, (c) => c.program),
    h("h3", {}, "Liquidity"),
    table("risk-liquidity", [
      ["Instrument", (l) => l.instrument], ["Position", (l) => fmt(l.quantity)], ["Depth", (l) => fmt(l.depth)],
      ["Share of depth", (l) => rate(l.ratio)]], r.liquidity, (l) => l.instrument),
    h("h3", {}, "Programs against the market"),
    ...(data.performance.length ? data.performance.map(performance)
      : [h("div", { class: "empty" }, "No hedge programs configured.")]));
}

// Where a row's collateral posted came from: the operator's collateral.posted event (who, when)
// or the config's figure.
function collateralSource(row) {
  if (row.collateral_source === "posted") return `posted by ${row.posted_by} at ${fmtDateTime(row.posted_at)}`;
  return "the config";
}

// Where a venue row's figures came from: the venue (read through ccxt) or the config's estimate.
function venueSource(v) {
  const sources = v.sources || {};
  const fromVenue = Object.keys(sources).filter((k) => sources[k] === "venue");
  if (v.venue_error) return `estimate (venue unread: ${v.venue_error})`;
  if (!fromVenue.length) return "estimate";
  if (fromVenue.length === Object.keys(sources).length) return "venue";
  return `venue: ${fromVenue.join(", ").replaceAll("_", " ")}; the rest estimated`;
}

// ---------------------------------------------------------------- the banner (every page)

async function refreshBanner(el) {
  let data;
  try {
    data = await api("/api/v1/hedge/risk/alerts");
  } catch {
    return; // the banner is a convenience: the page and the audit log keep the alerts
  }
  const active = data.active;
  el.hidden = !active.length;
  clear(el, active.length ? [h("b", {}, `${active.length} risk alert${active.length > 1 ? "s" : ""}: `),
    active.slice(0, 3).map((a) => `${a.kind} ${a.subject}`).join(" · "), " ",
    h("a", { href: "#/risk", testid: "risk-banner-link" }, "see Risk")] : []);
}

export function startBanner(el) {
  stopBanner();
  refreshBanner(el);
  bannerTimer = setInterval(() => refreshBanner(el), BANNER_MS);
}

export function stopBanner() {
  clearInterval(bannerTimer);
  bannerTimer = null;
}
