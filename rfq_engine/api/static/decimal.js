// Decimal strings, exactly: the API sends money and quantities as strings ("385.75"), and
// the UI compares, subtracts, rounds and formats them with BigInt, never as JS floats.
// Only charts turn them into numbers (toNumber).

const RE = /^([+-])?(\d*)(?:\.(\d*))?$/;

// "-12.50" -> {n: -1250n, scale: 2}; null for anything that is not a plain decimal.
export function parse(text) {
  if (text === null || text === undefined) return null;
  const m = RE.exec(String(text).trim());
  if (!m || (m[2] === "" && (m[3] === undefined || m[3] === ""))) return null;
  const frac = m[3] || "";
  let n = BigInt((m[2] || "0") + frac);
  if (m[1] === "-") n = -n;
  return { n, scale: frac.length };
}

const TEN = 10n;
const pow10 = (k) => TEN ** BigInt(k);

function align(a, b) {
  const scale = Math.max(a.scale, b.scale);
  return [a.n * pow10(scale - a.scale), b.n * pow10(scale - b.scale), scale];
}

function toText(n, scale) {
  const neg = n < 0n;
  let digits = (neg ? -n : n).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, "0");
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return (neg ? "-" : "") + digits;
}

// Round half away from zero to `dp` decimal places (dp >= 0).
function roundRaw(d, dp) {
  if (d.scale <= dp) return { n: d.n * pow10(dp - d.scale), scale: dp };
  const div = pow10(d.scale - dp);
  const neg = d.n < 0n;
  const abs = neg ? -d.n : d.n;
  let q = abs / div;
  if ((abs % div) * 2n >= div) q += 1n;
  return { n: neg ? -q : q, scale: dp };
}

export function isDecimal(text) {
  return parse(text) !== null;
}

// -1, 0 or 1; null when either side is not a decimal.
export function cmp(a, b) {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return null;
  const [p, q] = align(x, y);
  return p < q ? -1 : p > q ? 1 : 0;
}

export function sub(a, b) {
  const x = parse(a);
  const y = parse(b);
  if (!x || !y) return null;
  const [p, q, scale] = align(x, y);
  return toText(p - q, scale);
}

export function round(text, dp) {
  const d = parse(text);
  if (!d) return text;
  const r = roundRaw(d, dp);
  return toText(r.n, r.scale);
}

// (a - b) / base * 10000, rounded to `dp` places: a distance in basis points.
export function bps(a, b, base, dp = 1) {
  const diff = parse(sub(a, b));
  const denom = parse(base);
  if (!diff || !denom || denom.n === 0n) return null;
  // diff.n / 10^diff.scale / (denom.n / 10^denom.scale) * 10^4, kept exact then rounded
  const extra = dp + 2; // guard digits for rounding
  const num = diff.n * pow10(4 + denom.scale + extra);
  const den = denom.n * pow10(diff.scale);
  const q = { n: num / den, scale: extra };
  const r = roundRaw(q, dp);
  return toText(r.n, r.scale);
}

// Group thousands: "4000000" -> "4,000,000", "-1234.5" -> "-1,234.5". With dp, round
// (and pad) to exactly dp places. Anything that is not a decimal is returned as is.
export function fmt(text, dp = null, { sign = false } = {}) {
  if (text === null || text === undefined || text === "") return "—";
  let d = parse(text);
  if (!d) return String(text);
  if (dp !== null) d = roundRaw(d, dp);
  const plain = toText(d.n, d.scale);
  const neg = plain.startsWith("-");
  const body = neg ? plain.slice(1) : plain;
  const [int, frac] = body.split(".");
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const prefix = neg ? "-" : sign && d.n > 0n ? "+" : "";
  return prefix + grouped + (frac !== undefined ? `.${frac}` : "");
}

// Prices: at least 2 decimals, more when the dealer sent more; long references cut to 2.
export function fmtPrice(text, { sign = false } = {}) {
  const d = parse(text);
  if (!d) return fmt(text);
  const dp = d.scale < 2 ? 2 : d.scale > 4 ? 2 : d.scale;
  return fmt(text, dp, { sign });
}

// Rates "0.8333" -> "83.3%".
export function fmtRate(text, dp = 1) {
  const d = parse(text);
  if (!d) return "—";
  return `${fmt(toText(d.n * 100n, d.scale), dp)}%`;
}

// For charts only: an approximate JS number.
export function toNumber(text) {
  if (typeof text === "number") return text;
  const d = parse(text);
  return d ? Number(toText(d.n, d.scale)) : null;
}
