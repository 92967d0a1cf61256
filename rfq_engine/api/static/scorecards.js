// Dealer scorecards (GET /api/v1/dealers): a table and one chart per metric.

import { api } from "./api.js";
import { barChart } from "./charts.js";
import { fmt, fmtRate, toNumber } from "./decimal.js";
import { clear, fmtMs, h } from "./util.js";

const METRICS = [
  { key: "response_rate", title: "Response rate", hint: "quoted or declined / asked", tone: "good",
    value: (c) => (c.response_rate === null ? null : toNumber(c.response_rate) * 100),
    text: (c) => fmtRate(c.response_rate), max: 100, format: (v) => `${Math.round(v)}%` },
  { key: "median_response_ms", title: "Median response time", hint: "from the RFQ opening to the first answer", tone: "neutral",
    value: (c) => c.median_response_ms, text: (c) => fmtMs(c.median_response_ms), format: (v) => fmtMs(v),
    tick: (v, max) => (max >= 1000 ? `${+(v / 1000).toFixed(2)}s` : `${Math.round(v)} ms`) },
  { key: "win_rate", title: "Win rate", hint: "filled / quoted", tone: "good",
    value: (c) => (c.win_rate === null ? null : toNumber(c.win_rate) * 100),
    text: (c) => fmtRate(c.win_rate), max: 100, format: (v) => `${Math.round(v)}%` },
  { key: "avg_distance_bps", title: "Average distance from best", hint: "bps of the underlying; 0 = always best", tone: "bad",
    value: (c) => toNumber(c.avg_distance_bps), text: (c) => (c.avg_distance_bps === null ? "n/a" : `${fmt(c.avg_distance_bps, 1)} bps`),
    format: (v) => `${+v.toFixed(1)}`, tick: (v) => `${+v.toFixed(2)}` },
  { key: "last_look_reject_rate", title: "Last-look reject rate", hint: "awards rejected or timed out / awards", tone: "bad",
    value: (c) => (c.last_look_reject_rate === null ? null : toNumber(c.last_look_reject_rate) * 100),
    text: (c) => fmtRate(c.last_look_reject_rate), max: 100, format: (v) => `${Math.round(v)}%` },
];

const PERIODS = [["1", "24 hours"], ["7", "7 days"], ["30", "30 days"], ["90", "90 days"]];
let period = "30";
let s = null;

export function mount(view, ctx) {
  s = { ctx };
  const body = h("div", { class: "scorecards", testid: "scorecards" }, h("div", { class: "empty" }, "loading…"));
  const periodSel = h("div", { class: "seg" }, PERIODS.map(([days, label]) => h("button", {
    type: "button", class: `seg-btn ${days === period ? "on" : ""}`, testid: `period-${days}`,
    onclick: () => { period = days; mount(view, ctx); } }, label)));
  clear(view, h("div", { class: "dealers-page" },
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Dealer scorecards"),
        h("span", { class: "muted", testid: "scorecard-since" }), h("div", { class: "spacer" }), periodSel),
      body)));
  load(body, view);
}

export function unmount() {
  s = null;
}

async function load(body, view) {
  const since = new Date(Date.now() - Number(period) * 86400000).toISOString();
  let data;
  try {
    data = await api(`/api/v1/dealers?since=${encodeURIComponent(since)}`);
  } catch (err) {
    clear(body, h("div", { class: "empty bad" }, err.message));
    return;
  }
  if (!s) return;
  const since_el = view.querySelector("[data-testid=scorecard-since]");
  if (since_el) since_el.textContent = `since ${data.since.slice(0, 16).replace("T", " ")} UTC · from the audit log`;
  const dealers = data.dealers;
  const card = (d) => d.scorecard || {};
  const rows = dealers.map((d) => {
    const c = card(d);
    return h("tr", { testid: "scorecard-row", "data-dealer": d.dealer_id },
      h("td", {}, h("span", { class: `dot ${d.online ? "on" : "off"}`, title: d.online ? "online" : "offline" }), " ", d.dealer_id),
      h("td", { class: "muted" }, d.kind),
      h("td", { class: "num mono" }, String(c.asked ?? 0)),
      h("td", { class: "num mono" }, String(c.quoted ?? 0)),
      h("td", { class: "num mono" }, d.scorecard ? fmtRate(c.response_rate) : "—"),
      h("td", { class: "num mono" }, d.scorecard ? fmtMs(c.median_response_ms) : "—"),
      h("td", { class: "num mono" }, d.scorecard ? fmtRate(c.win_rate) : "—"),
      h("td", { class: "num mono" }, d.scorecard && c.avg_distance_bps !== null ? `${fmt(c.avg_distance_bps, 1)} bps` : "—"),
      h("td", { class: "num mono" }, d.scorecard ? fmtRate(c.last_look_reject_rate) : "—"),
      h("td", { class: "num mono" }, `${c.wins ?? 0} / ${c.awards ?? 0}`));
  });
  const charts = METRICS.map((m) => h("figure", { class: "chart-card", testid: `chart-card-${m.key}` },
    h("figcaption", {}, h("b", {}, m.title), h("span", { class: "muted" }, m.hint)),
    barChart(dealers.map((d) => {
      const c = d.scorecard;
      const value = c ? m.value(c) : null;
      return { label: d.dealer_id, value: value === undefined ? null : value, text: c ? m.text(c) : "n/a" };
    }), { max: m.max, format: m.format, tick: m.tick, tone: m.tone, testid: `chart-${m.key}`, title: m.title })));
  clear(body,
    h("div", { class: "table-wrap" }, h("table", { class: "grid-table", testid: "scorecard-table" },
      h("thead", {}, h("tr", {}, ["Dealer", "Kind", "Asked", "Quoted", "Response rate", "Median response",
        "Win rate", "Avg distance from best", "Last-look rejects", "Fills / awards"].map((c, i) =>
        h("th", { class: i >= 2 ? "num" : "" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No dealers configured."))))),
    h("div", { class: "charts" }, charts));
}
