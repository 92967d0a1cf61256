// Hedge scenarios (POST /api/v1/hedge/scenario): hedged vs unhedged revenue across prices at
// expiry (future, protective put, collar; DOMAIN.md worked example A) or NDF outcomes at
// settlement rates (worked example B). The table is the prices asked for; the chart is the
// payoff as a curve: the same scenario asked again at prices sampled between the given ones,
// the strikes among them, so a put's floor and a collar's cap show as the kinks they are.
// Every number comes from the server's Decimal code; only the chart turns them into floats.

import { api } from "./api.js";
import { compact, lineChart } from "./charts.js";
import { cmp, fmt, toNumber } from "./decimal.js";
import { clear, h } from "./util.js";

const MAX_POINTS = 200; // the API's bound on prices / settle_rates
const SAMPLES = 64;

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
    h("input", { class: "input", value: form[key] ?? "", testid: `scenario-field-${key}`,
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
      const data = await api("/api/v1/hedge/scenario", { method: "POST", body });
      show(result, data, await curve(body, data));
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

// The strikes the server resolved ("87.5%" of spot becomes a price): where the payoff bends.
function kinksOf(data) {
  const t = data.terms || {};
  return [["put_strike", "put"], ["call_strike", "call"]].filter(([k]) => t[k]).map(([k, name]) => ({
    x: t[k], name, role: name === "put" ? "floor" : "cap" }));
}

// Prices for the curve: about SAMPLES round steps from the lowest to the highest of the given
// prices and the strikes, plus every given price and every strike exactly; sorted, each once.
export function samplePrices(given, kinks, n = SAMPLES) {
  const exact = [...given, ...kinks].filter((v) => toNumber(v) !== null && Number.isFinite(toNumber(v)));
  if (!exact.length) return [];
  const values = exact.map(toNumber);
  const [lo, hi] = [Math.min(...values), Math.max(...values)];
  const room = Math.min(n, MAX_POINTS - exact.length);
  const grid = [];
  if (hi > lo && room > 1) {
    const raw = (hi - lo) / room;
    const e = Math.floor(Math.log10(raw));
    const m = [1, 2, 2.5, 5, 10].find((x) => x * 10 ** e >= raw);
    const step = m * 10 ** e;
    const dp = Math.max(0, -e + (m === 2.5 ? 1 : 0)); // the decimals a multiple of step needs
    for (let k = Math.ceil(lo / step); k * step <= hi; k++) grid.push((k * step).toFixed(dp));
  }
  const all = [...exact, ...grid].sort((a, b) => toNumber(a) - toNumber(b) || cmp(a, b));
  return all.filter((v, i) => i === 0 || cmp(v, all[i - 1]) !== 0).slice(0, MAX_POINTS);
}

// The same scenario at the sampled prices: {x, hedged, unhedged} as numbers, or null when the
// server will not compute it (the table still shows the given prices).
async function curve(body, data) {
  const ndf = data.chart.hedged !== undefined;
  const xs = samplePrices(data.chart.x, kinksOf(data).map((k) => k.x));
  if (xs.length < 2) return null;
  try {
    const dense = await api("/api/v1/hedge/scenario", { method: "POST",
      body: { ...body, [ndf ? "settle_rates" : "prices"]: xs } });
    return series(dense);
  } catch {
    return null;
  }
}

function series(data) {
  const ndf = data.chart.hedged !== undefined;
  const x = data.chart.x.map(toNumber);
  const pts = (ys) => ys.map((y, i) => [x[i], toNumber(y)]);
  return { x: data.chart.x, hedged: pts(ndf ? data.chart.hedged : data.chart.hedged_revenue),
    unhedged: pts(ndf ? data.chart.unhedged : data.chart.unhedged_revenue) };
}

function show(el, data, dense) {
  const ndf = data.chart.hedged !== undefined;
  const given = series(data);
  const drawn = dense || given;
  const kinks = kinksOf(data).map((k) => {
    const i = drawn.x.findIndex((v) => cmp(v, k.x) === 0);
    const y = i >= 0 ? drawn.hedged[i][1] : null;
    const level = y === null ? "" : ` ${fmt(String(Math.round(y)), 0)}`;
    return { x: toNumber(k.x), y, label: `${k.name} ${fmt(k.x)}`,
      tag: y === null ? "" : `${k.role} ${compact(y)}`,
      note: `${k.name} strike ${fmt(k.x)}: hedged revenue ${k.role}${level}` };
  });
  const head = ndf
    ? ["Settlement rate", "Revenue unhedged", "NDF settlement", "Revenue hedged", "Profit after power"]
    : ["Price at expiry", "Unhedged revenue / unit", "Unhedged P&L / unit", "Hedged revenue / unit", "Hedged P&L / unit"];
  const rows = data.rows.map((r) => ndf
    ? [r.settlement_rate, r.exposure, r.ndf_settlement, r.total, r.profit]
    : [r.price, r.unhedged_revenue, r.unhedged_pnl, r.hedged_revenue, r.hedged_pnl]);
  const marks = (cls, ys) => ys.map((y, i) => ({ x: toNumber(data.chart.x[i]), y: toNumber(y), cls,
    title: `${fmt(data.chart.x[i])}: ${fmt(y, 0)}` }));
  const chart = lineChart({
    series: [{ name: "Unhedged", cls: "unhedged", points: drawn.unhedged },
      { name: "Hedged", cls: "hedged", points: drawn.hedged }],
    marks: [...marks("unhedged", ndf ? data.chart.unhedged : data.chart.unhedged_revenue),
      ...marks("hedged", ndf ? data.chart.hedged : data.chart.hedged_revenue)],
    kinks, testid: "scenario-chart",
    xLabel: ndf ? data.chart.x_label : `${data.chart.x_label} (USD per unit)`,
    yLabel: ndf ? "revenue over the period (USD)" : `revenue for ${fmt(data.quantity)} units (USD)`,
    title: "hedged and unhedged revenue across outcomes" });
  clear(el, chart,
    dense ? null : h("p", { class: "hint", testid: "scenario-curve-note" },
      "The chart joins only the prices given: the server did not compute the sampled curve."),
    h("table", { class: "grid-table", testid: "scenario-table" },
      h("thead", {}, h("tr", {}, head.map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((v) => h("td", { class: "num" }, v === undefined ? "–" : fmt(v, 2))))))));
}
