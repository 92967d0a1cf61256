// DOM and formatting helpers. Text always goes in through textContent (h() children),
// never innerHTML, so nothing a dealer or a user typed can become markup.

import { fmt } from "./decimal.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "testid") el.setAttribute("data-testid", value);
    else if (key === "data") for (const [k, v] of Object.entries(value)) el.dataset[k] = v;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = !!value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key === "testid") el.setAttribute("data-testid", value);
    else el.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------- time (UTC, as the audit log)

// "2026-11-21T11:33:02.815005Z" -> microseconds since the epoch (a Number is exact to 2^53).
export function tsMicros(ts) {
  if (!ts) return null;
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(ts);
  if (!m) return Date.parse(ts) * 1000;
  const frac = (m[2] || "").padEnd(6, "0").slice(0, 6);
  return Date.parse(`${m[1]}Z`) * 1000 + Number(frac);
}

export const tsMillis = (ts) => (ts ? tsMicros(ts) / 1000 : null);

export function fmtTime(ts, digits = 3) {
  if (!ts) return "—";
  const t = ts.slice(11, 19);
  const frac = (/\.(\d+)Z$/.exec(ts) || [null, ""])[1].padEnd(6, "0");
  return digits ? `${t}.${frac.slice(0, digits)}` : t;
}

export function fmtDateTime(ts) {
  return ts ? `${ts.slice(0, 10)} ${fmtTime(ts, 0)}` : "—";
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (Math.abs(ms) >= 10000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms).toLocaleString("en-US")} ms`;
}

export function isoDate(d) {
  return d.toISOString().slice(0, 10);
}

// A calendar date typed as YYYY-MM-DD, read as a UTC date (never the browser's zone or
// locale): the text back when it is a real date, else null. "2026-02-30" is null.
export function utcDate(text) {
  const t = String(text ?? "").trim();
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(t);
  if (!m) return null;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])));
  return d.getUTCFullYear() === Number(m[1]) && isoDate(d) === t ? t : null;
}

// The day after a UTC date: the exclusive end of "up to and including" that date.
export function nextUtcDate(day) {
  const [y, m, d] = day.split("-").map(Number);
  return isoDate(new Date(Date.UTC(y, m - 1, d + 1)));
}

// Attributes of a date field: plain text in YYYY-MM-DD, UTC (a browser's date input shows
// the local locale's format, mm/dd/yyyy, and everything else here is UTC).
export const DATE_FIELD = { type: "text", placeholder: "YYYY-MM-DD", maxlength: 10, size: 10,
  spellcheck: "false", autocomplete: "off", inputmode: "numeric", title: "a UTC date: YYYY-MM-DD" };

// ---------------------------------------------------------------- RFQ wording

export const TERMINAL = new Set(["filled", "partially_filled", "not_filled", "cancelled", "expired",
  "rejected", "failed"]);
export const LIVE = ["created", "pending_approval", "open", "awarding", "confirming", "unresolved"];

export function stateBadge(state, testid = "rfq-state") {
  return h("span", { class: `badge st-${state}`, testid }, (state || "?").replace(/_/g, " "));
}

export function shortId(id) {
  return id ? id.slice(-8) : "—"; // the random end: an id's start is its creation time (new_id)
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];

export function fmtExpiry(date) {
  if (!date) return "";
  const [y, m, d] = date.split("-");
  return `${d}${MONTHS[Number(m) - 1]}${y.slice(2)}`;
}

export function legText(leg) {
  const i = leg.instrument || {};
  const ratio = leg.ratio && leg.ratio !== "1" ? `${leg.ratio}× ` : "";
  let what;
  switch (i.kind) {
    case "future": what = `${i.underlying} future ${fmtExpiry(i.expiry)}`; break;
    case "option":
      what = `${i.underlying} ${fmtExpiry(i.expiry)} ${fmt(i.strike)} ${i.option_type === "put" ? "put" : "call"}`;
      break;
    case "hashprice_ndf": what = `hashprice NDF ${i.start} +${i.days}d`; break;
    case "perpetual": what = `${i.underlying}-${i.quote_ccy} perpetual`; break;
    case "spot": what = `${i.underlying}/${i.quote_ccy} spot`; break;
    default: what = i.kind || "?";
  }
  return `${leg.side} ${ratio}${what}`;
}

// A short name for the package: what a trader would call it.
export function packageName(spec) {
  const legs = (spec && spec.legs) || [];
  const kinds = legs.map((l) => l.instrument.kind);
  if (legs.length === 1) {
    const i = legs[0].instrument;
    if (i.kind === "option") return `${i.option_type === "put" ? "Put" : "Call"} ${fmt(i.strike)} ${fmtExpiry(i.expiry)}`;
    if (i.kind === "future") return `Future ${fmtExpiry(i.expiry)}`;
    if (i.kind === "hashprice_ndf") return `Hashprice NDF ${i.days}d`;
    if (i.kind === "perpetual") return "Perpetual";
    return "Spot";
  }
  if (legs.length === 2 && kinds.every((k) => k === "option")) {
    const put = legs.find((l) => l.instrument.option_type === "put");
    const call = legs.find((l) => l.instrument.option_type === "call");
    if (put && call && put.side !== call.side) {
      return `Collar ${fmt(put.instrument.strike)}/${fmt(call.instrument.strike)} ${fmtExpiry(put.instrument.expiry)}`;
    }
  }
  if (legs.length === 2 && kinds.every((k) => k === "future") && legs[0].side !== legs[1].side) {
    const sorted = [...legs].sort((a, b) => a.instrument.expiry.localeCompare(b.instrument.expiry));
    return `Roll ${fmtExpiry(sorted[0].instrument.expiry)}→${fmtExpiry(sorted[1].instrument.expiry)}`;
  }
  return `${legs.length}-leg package`;
}

export function underlyingOf(spec) {
  const legs = (spec && spec.legs) || [];
  return legs.length ? legs[0].instrument.underlying : "";
}

// The side the award is made on (rfq_engine/domain/rfq.py): bid when the requester sells.
export function awardSide(spec) {
  if (!spec) return "ask";
  const side = spec.direction === "two_way" ? spec.private_side : spec.direction;
  return side === "sell" ? "bid" : "ask";
}

export function directionText(spec) {
  if (!spec) return "";
  if (spec.direction === "two_way") return `two-way (${spec.private_side || "?"})`;
  return spec.direction;
}

export function quoteCcy(spec) {
  const legs = (spec && spec.legs) || [];
  return legs.length ? legs[0].instrument.quote_ccy : "";
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export function uuid() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16)); // randomUUID needs a secure context
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
