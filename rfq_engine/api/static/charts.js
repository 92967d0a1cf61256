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
