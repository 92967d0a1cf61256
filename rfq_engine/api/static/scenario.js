// Hedge scenarios (POST /api/v1/hedge/scenario): hedged vs unhedged revenue across prices at
// expiry (future, protective put, collar; DOMAIN.md worked example A) or NDF outcomes at
// settlement rates (worked example B). The numbers come from the server's Decimal code;
// only the chart turns them into floats.

import { api } from "./api.js";
import { fmt, toNumber } from "./decimal.js";
import { clear, h, svg } from "./util.js";

const PRESETS = {
  collar: { strategy: "collar", spot: "40000", cost: "30000", put: "35000", call: "50000",
            premium: "0", quantity: "100", prices: "25000,40000,60000" },
  put: { strategy: "put", spot: "40000", cost: "30000", put: "35000", premium: "1500",
         quantity: "100", prices: "25000,35000,40000,60000" },
  future: { strategy: "future", spot: "40000", cost: "30000", quantity: "100",
            prices: "25000,40000,60000" },
  ndf: { strategy: "ndf", unit_price: "60", hashrate_ph: "50", days: "30", power_mw: "1.5",
         power_price: "75", settle_rates: "45,60,75" },
};
const FIELDS = {
  collar: ["spot", "cost", "put", "call", "premium", "quantity", "prices"],
  put: ["spot", "cost", "put", "premium", "quantity", "prices"],
  future: ["spot", "cost", "quantity", "prices"],
  ndf: ["unit_price", "hashrate_ph", "days", "power_mw", "power_price", "settle_rates"],
};
const LABELS = {
  spot: "Spot", cost: "All-in cost / unit", put: "Put strike", call: "Call strike",
  premium: "Net premium / unit", quantity: "Quantity", prices: "Prices at expiry",
  unit_price: "Unit price U (USD/PH/s/day)", hashrate_ph: "Hashrate (PH/s)", days: "Days",
  power_mw: "Power (MW)", power_price: "Power price (USD/MWh)", settle_rates: "Settlement rates",
};
let form = { ...PRESETS.collar };

export function mount(view) {
  const result = h("div", { testid: "scenario-result" }, h("div", { class: "empty" }, "Run a scenario."));
  const inputs = h("div", { class: "scenario-fields" });
  const renderFields = () => clear(inputs, FIELDS[form.strategy].map((key) => h("label", { class: "field" },
    h("span", {}, LABELS[key]),
    h("input", { class: "input", value: form[key] ?? "", testid: `scenario-${key}`,
                 oninput: (e) => { form[key] = e.target.value; } }))));
  const strategies = h("div", { class: "seg" }, Object.keys(PRESETS).map((name) => h("button", {
    type: "button", class: `seg-btn ${form.strategy === name ? "on" : ""}`, testid: `scenario-${name}`,
    onclick: () => { form = { ...PRESETS[name] }; mount(view); } }, name === "ndf" ? "Hashprice NDF" : name)));
  renderFields();
  const run = async () => {
    const body = { strategy: form.strategy };
    for (const key of FIELDS[form.strategy]) {
      const value = (form[key] ?? "").trim();
      if (!value) continue;
      if (key === "prices" || key === "settle_rates") body[key] = value.split(",").map((v) => v.trim());
      else if (key === "days") body[key] = Number.parseInt(value, 10);
      else body[key] = value;
    }
    try {
      show(result, await api("/api/v1/hedge/scenario", { method: "POST", body }));
    } catch (err) {
      clear(result, h("div", { class: "empty bad", testid: "scenario-error" }, err.message));
    }
  };
  clear(view, h("section", { class: "panel scenario-page" },
    h("div", { class: "panel-head" }, h("h2", {}, "Hedge scenarios"), h("div", { class: "spacer" }), strategies),
    h("div", { class: "panel-body" },
      h("form", { class: "scenario-form", onsubmit: (e) => { e.preventDefault(); run(); } }, inputs,
        h("button", { type: "submit", class: "btn primary", testid: "scenario-run" }, "Run")),
      result)));
  run();
}

export function unmount() {}

function show(el, data) {
  const ndf = data.chart.hedged !== undefined;
  const hedged = ndf ? data.chart.hedged : data.chart.hedged_revenue;
  const unhedged = ndf ? data.chart.unhedged : data.chart.unhedged_revenue;
  const head = ndf
    ? ["Settlement rate", "Revenue unhedged", "NDF settlement", "Revenue hedged", "Profit after power"]
    : ["Price at expiry", "Unhedged revenue / unit", "Unhedged P&L / unit", "Hedged revenue / unit", "Hedged P&L / unit"];
  const rows = data.rows.map((r) => ndf
    ? [r.settlement_rate, r.exposure, r.ndf_settlement, r.total, r.profit]
    : [r.price, r.unhedged_revenue, r.unhedged_pnl, r.hedged_revenue, r.hedged_pnl]);
  clear(el,
    lineChart(data.chart.x, [["Unhedged", unhedged, "unhedged"], ["Hedged", hedged, "hedged"]], data.chart.x_label),
    h("table", { class: "grid-table", testid: "scenario-table" },
      h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((v) => h("td", { class: "num" }, v === undefined ? "–" : fmt(v, 2))))))));
}

function lineChart(xs, series, xLabel) {
  const W = 640, H = 260, L = 70, R = 20, T = 16, B = 36;
  const xv = xs.map(toNumber);
  const all = series.flatMap(([, ys]) => ys.map(toNumber));
  const [x0, x1] = [Math.min(...xv), Math.max(...xv)];
  const [y0, y1] = [Math.min(0, ...all), Math.max(...all) * 1.08 || 1];
  const px = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - T - B);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0));
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart line-chart", testid: "scenario-chart", role: "img" },
    ticks.map((t) => [svg("line", { x1: L, x2: W - R, y1: py(t), y2: py(t), class: "gridline" }),
      svg("text", { x: L - 6, y: py(t) + 4, "text-anchor": "end", class: "tick" }, compact(t))]),
    xv.map((x, i) => svg("text", { x: px(x), y: H - B + 16, "text-anchor": "middle", class: "tick" }, xs[i])),
    svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", class: "axis-label" }, xLabel),
    series.map(([name, ys, cls], k) => [
      svg("polyline", { points: ys.map((y, i) => `${px(xv[i])},${py(toNumber(y))}`).join(" "), class: `series ${cls}` }),
      ys.map((y, i) => svg("circle", { cx: px(xv[i]), cy: py(toNumber(y)), r: 3, class: `series ${cls}` })),
      svg("text", { x: L + 10 + k * 110, y: T + 4, class: `legend ${cls}` }, `■ ${name}`)]));
}

function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}
