// Hedge programs (GET /api/v1/hedge/programs): each program's next scheduled runs, what its
// latest scheduled time plans, its decisions and its coverage. Read-only: a program runs on
// its schedule under `rfq serve`, or by hand with `rfq hedge plan` / `rfq hedge run --at`.

import { api } from "./api.js";
import { fmt, fmtRate } from "./decimal.js";
import { clear, fmtDateTime, h } from "./util.js";

let s = null;

export function mount(view, ctx) {
  s = { ctx };
  const body = h("div", { class: "programs", testid: "programs" }, h("div", { class: "empty" }, "loading…"));
  clear(view, h("div", { class: "programs-page" },
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", {}, "Hedge programs"),
        h("span", { class: "muted", testid: "programs-as-of" })),
      body)));
  load(body, view);
}

export function unmount() {
  s = null;
}

function coverageTable(rows) {
  if (!rows) return h("div", { class: "empty" }, "coverage unavailable");
  return h("table", { class: "grid-table", testid: "program-coverage" },
    h("thead", {}, h("tr", {}, ["Period", "Forecast", "Hedged", "Coverage", "Target ratio"].map((c, i) =>
      h("th", { class: i ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((c) => h("tr", { testid: "coverage-row", "data-period": c.period },
      h("td", {}, c.period),
      h("td", { class: "num mono" }, `${fmt(c.forecast, 4)} ${c.unit}`),
      h("td", { class: "num mono" }, `${fmt(c.hedged, 4)} ${c.unit}`),
      h("td", { class: "num mono" }, c.coverage === null ? "—" : fmtRate(c.coverage)),
      h("td", { class: "num mono" }, fmtRate(c.target_ratio))))));
}

// Each perpetual position's funding paid so far (an estimate at the configured rate and today's mark).
function fundingTable(rows, problem) {
  if (!rows) return h("div", { class: "empty", testid: "program-funding-error" }, `funding unavailable: ${problem}`);
  if (!rows.length) return null;
  return h("table", { class: "grid-table", testid: "program-funding" },
    h("thead", {}, h("tr", {}, ["Perpetual", "Since", "Intervals", "Rate", "Funding paid", "Paid (USD)"].map((c, i) =>
      h("th", { class: i ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((f) => h("tr", { testid: "funding-row", "data-instrument": f.instrument },
      h("td", {}, `${f.dealer} ${f.instrument}`),
      h("td", { class: "num mono" }, fmtDateTime(f.since)),
      h("td", { class: "num mono" }, f.intervals ?? ""),
      h("td", { class: "num mono" }, f.rate === null ? f.note : fmt(f.rate)),
      h("td", { class: "num mono" }, f.paid === null ? "—" : `${fmt(f.paid, 8)} ${f.currency}`),
      h("td", { class: "num mono" }, f.paid_usd === null ? "—" : fmt(f.paid_usd, 2))))));
}

function decisionList(decisions) {
  if (!decisions.length) return h("div", { class: "empty", testid: "program-no-decision" }, "no decision recorded yet");
  return h("ul", { class: "decisions" }, decisions.map((d) => h("li", { testid: "program-decision" },
    h("b", {}, `${d.period}: ${d.action}`), " ",
    h("span", { class: "muted" }, `${d.trigger} · recorded ${fmtDateTime(d.recorded_at)}`),
    d.target === null ? null : h("span", { class: "mono" }, ` · target ${d.target}, held ${d.held}`),
    h("ul", { class: "muted" }, d.reasons.map((r) => h("li", {}, r))))));
}

function card(p) {
  const due = p.due;
  return h("article", { class: "program-card panel", testid: "program-card", "data-program": p.name },
    h("div", { class: "panel-head" }, h("h3", {}, p.name),
      h("span", { class: "muted" }, `${p.strategy} ${p.underlying} · ratio ${fmtRate(p.hedge_ratio)} · ${p.schedule} (${p.timezone})`
        + (p.approval ? " · needs approval" : "") + (p.enabled ? "" : " · disabled"))),
    h("div", { class: "program-runs" },
      h("b", {}, "Next runs: "),
      p.next_runs.length
        ? h("span", { testid: "program-next-runs" }, p.next_runs.map(fmtDateTime).join(" · "))
        : h("span", { class: "muted", testid: "program-next-runs" }, "none (disabled)")),
    due ? h("div", { class: "muted", testid: "program-due" },
      `latest scheduled time ${fmtDateTime(due.scheduled_for)} plans ${due.period}`) : null,
    coverageTable(p.coverage),
    fundingTable(p.funding, p.funding_error),
    decisionList(p.decisions));
}

async function load(body, view) {
  let data;
  try {
    data = await api("/api/v1/hedge/programs");
  } catch (err) {
    clear(body, h("div", { class: "empty bad" }, err.message));
    return;
  }
  if (!s) return;
  const asOf = view.querySelector("[data-testid=programs-as-of]");
  if (asOf) asOf.textContent = `as of ${fmtDateTime(data.as_of)} · from the audit log`;
  clear(body, ...(data.programs.length ? data.programs.map(card)
    : [h("div", { class: "empty" }, "No hedge programs configured ([programs.<name>] in the config).")]));
}
