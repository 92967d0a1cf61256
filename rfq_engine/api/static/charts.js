// Hand-written SVG charts (no library, no CDN). Values become JS numbers here, and only
// here: a chart's bar length is drawing, not money.

import { svg } from "./util.js";

// A round step for about four intervals, and the axis end it gives: 1512 -> 500, 2000.
function niceAxis(value) {
  if (!(value > 0)) return { max: 1, step: 0.25 };
  const raw = value / 4;
  const exp = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * exp).find((x) => x >= raw);
  return { max: Math.ceil(value / step - 1e-9) * step, step };
}

// Horizontal bars, one per item: [{label, value (number|null), text}].
// opts: {max, format(v) for values, tick(v, axisMax) for the axis, tone: "good"|"bad"|"neutral", testid, title}
export function barChart(items, opts = {}) {
  const rowH = 22;
  const labelW = 92;
  const valueW = 64;
  const width = 420;
  const top = 8;
  const axisH = 18;
  const plotW = width - labelW - valueW;
  const height = top + Math.max(items.length, 1) * rowH + axisH;
  const values = items.map((i) => i.value).filter((v) => v !== null && v !== undefined);
  const axis = opts.max ? { max: opts.max, step: opts.max / 4 } : niceAxis(Math.max(0, ...values));
  const max = axis.max;
  const format = opts.format || ((v) => String(v));
  const tickFormat = opts.tick || format;
  const x = (v) => labelW + (max > 0 ? (Math.min(v, max) / max) * plotW : 0);
  const ticks = [];
  for (let t = 0; t <= max + 1e-9; t += axis.step) ticks.push(t);
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, class: `chart tone-${opts.tone || "good"}`,
    role: "img", "aria-label": opts.title || "", testid: opts.testid,
    preserveAspectRatio: "xMinYMin meet",
  });
  if (opts.title) chart.appendChild(svg("title", {}, opts.title));
  for (const t of ticks) {
    chart.appendChild(svg("line", { x1: x(t), x2: x(t), y1: top - 2, y2: height - axisH + 2,
      class: t === 0 ? "axis" : "grid" }));
    chart.appendChild(svg("text", { x: x(t), y: height - 4, class: "tick",
      "text-anchor": t === 0 ? "start" : Math.abs(t - max) < 1e-9 ? "end" : "middle" }, tickFormat(t, max)));
  }
  if (!items.length) {
    chart.appendChild(svg("text", { x: labelW + 6, y: top + 15, class: "na" }, "no data"));
  }
  items.forEach((item, i) => {
    const y = top + i * rowH;
    chart.appendChild(svg("text", { x: labelW - 8, y: y + rowH / 2 + 4, class: "label",
      "text-anchor": "end" }, item.label));
    if (item.value === null || item.value === undefined) {
      chart.appendChild(svg("text", { x: labelW + 6, y: y + rowH / 2 + 4, class: "na" }, "n/a"));
      return;
    }
    const w = Math.max(x(item.value) - labelW, item.value > 0 ? 2 : 0);
    const bar = svg("rect", { x: labelW, y: y + 4, width: w, height: rowH - 8, rx: 2,
      class: "bar", "data-dealer": item.label });
    bar.appendChild(svg("title", {}, `${item.label}: ${item.text ?? format(item.value)}`));
    chart.appendChild(bar);
    chart.appendChild(svg("text", { x: width - 4, y: y + rowH / 2 + 4, class: "value",
      "text-anchor": "end" }, item.text ?? format(item.value)));
  });
  return chart;
}

// About `n` round intervals covering lo..hi: 23500..61000 -> 25000, 30000, ... 60000.
export function ticksBetween(lo, hi, n = 5) {
  if (!(hi > lo)) hi = lo + (Math.abs(lo) || 1);
  const raw = (hi - lo) / n;
  const exp = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * exp).find((x) => x >= raw);
  const ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) ticks.push(k * step);
  return { ticks, step };
}

// "3500000" -> "3.5M", 25000 -> "25k": tick labels only.
export function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toFixed(2)}B`;
  if (a >= 1e6) return `${+(v / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

// Curves over x: series [{name, cls, points: [[x, y], ...]}] drawn as polylines through
// every point (sorted by x), so a payoff's kinks show where its points are; marks
// [{x, y, cls, title}] are dots (the table's rows); kinks [{x, y, label, tag, note}] are
// dashed verticals, with a ring and a tag ("floor 3.5M") where the curve bends. Both axes
// are labelled.
export function lineChart({ series, marks = [], kinks = [], xLabel, yLabel, testid, title }) {
  const W = 720, H = 320, L = 74, R = 24, T = 46, B = 50;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const pad = (Math.max(...ys) - Math.min(...ys)) * 0.05 || Math.abs(ys[0]) * 0.1 || 1;
  const { step } = ticksBetween(Math.min(...ys) - pad, Math.max(...ys) + pad, 5);
  const y0 = Math.floor((Math.min(...ys) - pad) / step) * step; // the axis ends on round ticks
  const y1 = Math.ceil((Math.max(...ys) + pad) / step) * step;
  const yt = ticksBetween(y0, y1, Math.round((y1 - y0) / step));
  const xt = ticksBetween(x0, x1, 6);
  const px = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - T - B);
  const r = (v) => Math.round(v * 10) / 10;
  return svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart line-chart", testid, role: "img",
    "aria-label": title || "" },
  title ? svg("title", {}, title) : null,
  yt.ticks.filter((t) => t >= y0 - step * 1e-9 && t <= y1 + step * 1e-9).map((t) => [
    svg("line", { x1: L, x2: W - R, y1: r(py(t)), y2: r(py(t)), class: "gridline" }),
    svg("text", { x: L - 6, y: r(py(t)) + 4, "text-anchor": "end", class: "tick" }, compact(t))]),
  xt.ticks.filter((t) => t >= x0 - 1e-9 && t <= x1 + 1e-9).map((t) => [
    svg("line", { x1: r(px(t)), x2: r(px(t)), y1: H - B, y2: H - B + 4, class: "axis" }),
    svg("text", { x: r(px(t)), y: H - B + 16, "text-anchor": "middle", class: "tick" }, compact(t))]),
  svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }),
  svg("line", { x1: L, x2: L, y1: T - 6, y2: H - B, class: "axis" }),
  svg("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", class: "axis-label",
    testid: "x-axis-label" }, xLabel),
  svg("text", { x: 0, y: 0, transform: `translate(14 ${(T + H - B) / 2}) rotate(-90)`, "text-anchor": "middle",
    class: "axis-label", testid: "y-axis-label" }, yLabel),
  kinks.map((k) => [
    svg("line", { x1: r(px(k.x)), x2: r(px(k.x)), y1: T - 6, y2: H - B, class: "kink" }),
    svg("text", { x: r(px(k.x)), y: T - 10, "text-anchor": "middle", class: "kink-label" }, k.label),
    k.y === null || k.y === undefined ? null : [
      svg("circle", { cx: r(px(k.x)), cy: r(py(k.y)), r: 4.5, class: "kink-point", testid: "scenario-kink",
        "data-x": String(k.x) }, svg("title", {}, k.note || k.label)),
      k.tag ? svg("text", { x: r(px(k.x)) + (k.x > (x0 + x1) / 2 ? 8 : -8), y: r(py(k.y)) - 9,
        "text-anchor": k.x > (x0 + x1) / 2 ? "start" : "end", class: "kink-tag", testid: "scenario-kink-tag" },
      k.tag) : null]]),
  series.map((s, i) => [
    svg("polyline", { class: `series ${s.cls}`, "data-series": s.cls, "data-points": s.points.length,
      points: [...s.points].sort((a, b) => a[0] - b[0]).map(([x, y]) => `${r(px(x))},${r(py(y))}`).join(" ") }),
    svg("text", { x: L + 10 + i * 120, y: 14, class: `legend ${s.cls}` }, `■ ${s.name}`)]),
  marks.map((m) => svg("circle", { cx: r(px(m.x)), cy: r(py(m.y)), r: 3, class: `series mark ${m.cls}` },
    m.title ? svg("title", {}, m.title) : null)));
}
