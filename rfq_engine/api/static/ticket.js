// The new-RFQ ticket: templates for the common hedges, the legs, size, dealers, window.
//
// Orientation (rfq_engine/domain/rfq.py): a leg's side is what the requester does when
// the package trades in the RFQ's direction; for two_way the legs are written as buying
// the package. Dealers quote one net price per unit: a bid (what they pay) when the
// requester sells, an ask (what the requester pays) when buying.

import { ApiError, api } from "./api.js";
import { fmt, parse } from "./decimal.js";
import { DATE_FIELD, clear, h, isoDate, legText, utcDate, uuid } from "./util.js";

function lastFriday(year, month) { // month 0-11
  const d = new Date(Date.UTC(year, month + 1, 0));
  while (d.getUTCDay() !== 5) d.setUTCDate(d.getUTCDate() - 1);
  return d;
}

// The monthly expiry (last Friday) `ahead` months from now, skipping one closer than
// `minDays` days.
function monthlyExpiry(ahead, minDays = 7) {
  const now = new Date();
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth() + ahead;
  let d = lastFriday(y, m);
  if (d.getTime() - now.getTime() < minDays * 86400000) d = lastFriday(y, m + 1);
  return isoDate(d);
}

function firstOfNextMonth() {
  const now = new Date();
  return isoDate(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1)));
}

const fut = (expiry) => ({ kind: "future", underlying: "BTC", quote_ccy: "USD", expiry });
const opt = (type, strike, expiry) => ({ kind: "option", underlying: "BTC", quote_ccy: "USD",
  expiry, strike, option_type: type });

export const TEMPLATES = {
  sell_future: {
    label: "Sell future", direction: "sell", quantity: "100", unit: "BTC",
    note: "Lock in a price for production: sell the dated future. Dealers bid what they pay you.",
    legs: () => [{ side: "sell", ratio: "1", instrument: fut(monthlyExpiry(1)) }],
  },
  protective_put: {
    label: "Protective put", direction: "buy", quantity: "100", unit: "BTC",
    note: "Buy a floor: a put at the strike. Dealers offer the premium you pay.",
    legs: () => [{ side: "buy", ratio: "1", instrument: opt("put", "35000", monthlyExpiry(3)) }],
  },
  collar: {
    label: "Costless collar", direction: "buy", quantity: "100", unit: "BTC",
    note: "Buy the put, sell the call, one net premium: negative means you receive.",
    legs: () => {
      const expiry = monthlyExpiry(3);
      return [{ side: "buy", ratio: "1", instrument: opt("put", "35000", expiry) },
        { side: "sell", ratio: "1", instrument: opt("call", "50000", expiry) }];
    },
  },
  calendar_roll: {
    label: "Calendar roll", direction: "sell", quantity: "100", unit: "BTC",
    note: "Buy back the expiring future and sell the next one. Dealers bid the net: next minus near, per unit.",
    legs: () => {
      const near = monthlyExpiry(0, 1); // the expiring one
      const next = new Date(`${near}T00:00:00Z`);
      return [{ side: "buy", ratio: "1", instrument: fut(near) },
        { side: "sell", ratio: "1",
          instrument: fut(isoDate(lastFriday(next.getUTCFullYear(), next.getUTCMonth() + 1))) }];
    },
  },
  hashprice_ndf: {
    label: "Hashprice NDF", direction: "sell", quantity: "50", unit: "PH/s/day",
    note: "Sell hashrate forward (a miner's short hedge): USD per PH/s per day, cash-settled on the index average.",
    legs: () => [{ side: "sell", ratio: "1", instrument: { kind: "hashprice_ndf", underlying: "HASHPRICE",
      quote_ccy: "USD", start: firstOfNextMonth(), days: 30 } }],
  },
};

const KINDS = ["future", "option", "hashprice_ndf", "perpetual", "spot"];

function blankInstrument(kind, prev) {
  const base = { underlying: kind === "hashprice_ndf" ? "HASHPRICE" : (prev.underlying === "HASHPRICE" ? "BTC" : prev.underlying || "BTC"),
    quote_ccy: prev.quote_ccy || "USD" };
  if (kind === "future") return { kind, ...base, expiry: prev.expiry || monthlyExpiry(1) };
  if (kind === "option") return { kind, ...base, expiry: prev.expiry || monthlyExpiry(3), strike: prev.strike || "35000", option_type: prev.option_type || "put" };
  if (kind === "hashprice_ndf") return { kind, ...base, start: prev.start || firstOfNextMonth(), days: prev.days || 30 };
  return { kind, ...base };
}

const flip = (side) => (side === "buy" ? "sell" : "buy");
const orientation = (direction) => (direction === "sell" ? "sell" : "buy");

export class Ticket {
  constructor(ctx, onCreated) {
    this.ctx = ctx;
    this.onCreated = onCreated;
    this.key = uuid(); // Idempotency-Key: a double click or a retry never makes two RFQs
    this.el = h("section", { class: "panel ticket", testid: "rfq-ticket" });
    const mandates = Object.keys(ctx.mandates);
    this.state = { mandate: mandates[0] || "default", dealers: new Set(), windowS: "5",
      allowPartial: false, limit: "", clientId: "" };
    this.useTemplate("collar");
  }

  useTemplate(name) {
    const t = TEMPLATES[name];
    Object.assign(this.state, { template: name, direction: t.direction, privateSide: "buy",
      quantity: t.quantity, unit: t.unit, legs: t.legs() });
    this.preselectDealers();
    this.render();
  }

  preselectDealers() {
    const mandate = this.ctx.mandates[this.state.mandate];
    const approved = mandate ? new Set(Object.keys(mandate.dealers || {})) : null;
    this.state.dealers = new Set(this.ctx.dealers
      .filter((d) => d.online && (!approved || approved.has(d.dealer_id)))
      .map((d) => d.dealer_id));
  }

  setDirection(direction) {
    const s = this.state;
    if (direction === s.direction) return;
    if (direction === "two_way") s.privateSide = orientation(s.direction);
    if (orientation(direction) !== orientation(s.direction)) {
      s.legs = s.legs.map((leg) => ({ ...leg, side: flip(leg.side) }));
    }
    s.direction = direction;
    this.render();
  }

  body() {
    const s = this.state;
    const legs = s.legs.map((leg) => {
      const i = { ...leg.instrument };
      if (i.kind === "hashprice_ndf") i.days = Number.parseInt(i.days, 10);
      return { instrument: i, side: leg.side, ratio: leg.ratio || "1" };
    });
    const body = { legs, direction: s.direction, quantity: s.quantity.trim(),
      quantity_unit: s.unit.trim(), dealers: [...s.dealers], mandate: s.mandate,
      window_ms: Math.round(Number(s.windowS) * 1000), allow_partial: s.allowPartial };
    if (s.direction === "two_way") body.private_side = s.privateSide;
    if (s.limit.trim()) body.limit_price = s.limit.trim();
    return body;
  }

  async submit(button) {
    const errBox = this.el.querySelector("[data-testid=rfq-form-error]");
    errBox.hidden = true;
    this.el.querySelectorAll(".invalid").forEach((e) => e.classList.remove("invalid"));
    const s = this.state;
    const badDate = s.legs.flatMap((l, i) => ["expiry", "start"].filter((k) => k in l.instrument
      && !utcDate(l.instrument[k])).map((k) => `legs[${i}].instrument.${k}`))[0];
    const problem = !parse(s.quantity) ? ["quantity", "must be a decimal number, e.g. 100"]
      : !s.dealers.size ? ["dealers", "select at least one dealer"]
        : !(Number(s.windowS) > 0) ? ["window_ms", "must be a number of seconds"]
          : badDate ? [badDate, "a date is YYYY-MM-DD (UTC), e.g. 2027-03-26"] : null;
    if (problem) {
      this.showError(new ApiError(422, { error: "validation", field: problem[0], reason: problem[1] }));
      return;
    }
    button.disabled = true;
    const headers = { "Idempotency-Key": s.clientId.trim() || this.key };
    try {
      const view = await api("/api/v1/rfqs", { method: "POST", body: this.body(), headers });
      this.key = uuid();
      s.clientId = "";
      this.render();
      this.onCreated(view);
    } catch (err) {
      this.showError(err);
    } finally {
      button.disabled = false;
    }
  }

  showError(err) {
    const errBox = this.el.querySelector("[data-testid=rfq-form-error]");
    errBox.textContent = err.message;
    errBox.hidden = false;
    if (err.field) {
      const exact = this.el.querySelector(`[data-field="${CSS.escape(err.field)}"]`);
      const top = this.el.querySelector(`[data-field="${CSS.escape(err.field.split(/[.[]/)[0])}"]`);
      (exact || top)?.classList.add("invalid");
    }
  }

  // An NDF's size: H PH/s for N days is H x N contracts (1 PH/s for 1 day each), exactly.
  contractsText() {
    const ndf = this.state.legs.find((l) => l.instrument.kind === "hashprice_ndf");
    const q = parse(this.state.quantity);
    if (!ndf || !q || !/^\d+$/.test(String(ndf.instrument.days).trim())) return "";
    const days = String(ndf.instrument.days).trim();
    const digits = (q.n * BigInt(days)).toString().padStart(q.scale + 1, "0");
    const contracts = q.scale ? `${digits.slice(0, -q.scale)}.${digits.slice(-q.scale)}` : digits;
    return `${fmt(this.state.quantity)} PH/s × ${days} days = ${fmt(contracts)} contracts`;
  }

  render() {
    const s = this.state;
    const ctx = this.ctx;
    const t = TEMPLATES[s.template];
    const side = s.direction === "two_way" ? s.privateSide : s.direction;
    const input = (field, value, attrs, onchange) => h("input", { class: "input", value,
      "data-field": field, ...attrs, oninput: (e) => onchange(e.target.value) });

    const templates = h("div", { class: "seg wrap", role: "tablist" },
      Object.entries(TEMPLATES).map(([name, tpl]) => h("button", {
        type: "button", class: `seg-btn ${name === s.template ? "on" : ""}`,
        testid: `template-${name}`, onclick: () => this.useTemplate(name) }, tpl.label)));

    const mandateSel = h("select", { class: "input", "data-field": "mandate", testid: "rfq-mandate",
      onchange: (e) => { s.mandate = e.target.value; this.preselectDealers(); this.render(); } },
    (Object.keys(ctx.mandates).length ? Object.keys(ctx.mandates) : [s.mandate]).map((m) =>
      h("option", { value: m, selected: m === s.mandate }, m)));
    const mandate = ctx.mandates[s.mandate];
    const mandateHint = mandate ? [
      `min ${mandate.min_quotes} quote${mandate.min_quotes === 1 ? "" : "s"}`,
      mandate.price_tolerance_bps ? `tolerance ${fmt(mandate.price_tolerance_bps)} bps` : null,
      mandate.approval_threshold ? `approval above ${fmt(mandate.approval_threshold)} ${mandate.currency || ""}` : null,
    ].filter(Boolean).join(" · ") : "";

    const dirSel = h("div", { class: "seg", "data-field": "direction" },
      ["buy", "sell", "two_way"].map((d) => h("button", { type: "button",
        class: `seg-btn ${d === s.direction ? "on" : ""} dir-${d}`, testid: `direction-${d}`,
        onclick: () => this.setDirection(d) }, d === "two_way" ? "Two-way" : d[0].toUpperCase() + d.slice(1))));
    const privateSel = s.direction === "two_way" ? h("label", { class: "inline" }, "private side ",
      h("select", { class: "input small", "data-field": "private_side",
        onchange: (e) => { s.privateSide = e.target.value; this.render(); } },
      ["buy", "sell"].map((v) => h("option", { value: v, selected: v === s.privateSide }, v))),
      h("span", { class: "muted" }, " never sent to dealers")) : null;

    const isNdf = s.legs.some((l) => l.instrument.kind === "hashprice_ndf");
    const contractsHint = h("p", { class: "hint mono", testid: "ndf-contracts", hidden: !isNdf });
    const updateContracts = () => { contractsHint.textContent = this.contractsText(); };
    updateContracts();

    const priceSide = side === "sell" ? "bid" : "ask";
    const orientationNote = h("p", { class: "hint", testid: "rfq-orientation" });
    const updateNote = () => clear(orientationNote, s.direction === "two_way"
      ? [`Two-way: the legs are written as buying the package (${s.legs.map(legText).join(", ")}). `,
        `Dealers quote a net bid and ask per ${s.unit || "unit"}; you ${side} (private, never sent), so the award is on the `,
        h("b", {}, priceSide), "."]
      : [`You ${side} the package: ${s.legs.map(legText).join(", ")}. Dealers quote one net `,
        h("b", {}, priceSide), ` per ${s.unit || "unit"}: `,
        priceSide === "bid" ? "what you receive (negative: you pay)." : "what you pay (negative: you receive)."]);
    updateNote();

    const seg = (field, options, value, onpick, testid) => h("div", { class: "seg mini", "data-field": field },
      options.map(([v, label]) => h("button", { type: "button", class: `seg-btn ${v === value ? "on" : ""} opt-${v}`,
        testid: testid ? `${testid}-${v}` : null, onclick: () => onpick(v) }, label)));
    const legs = h("div", { class: "legs", testid: "rfq-legs" }, s.legs.map((leg, idx) => {
      const i = leg.instrument;
      const f = (k) => `legs[${idx}].instrument.${k}`;
      const set = (k) => (v) => { i[k] = v; updateNote(); };
      const mini = (label, el) => h("label", { class: "mini-field" }, h("span", {}, label), el);
      const details = [];
      const date = { ...DATE_FIELD, class: "input date" };
      if (i.kind === "future" || i.kind === "option") details.push(mini("Expiry (UTC)", input(f("expiry"), i.expiry, date, set("expiry"))));
      if (i.kind === "option") {
        details.push(mini("Strike", input(f("strike"), i.strike, { inputmode: "decimal" }, set("strike"))));
        details.push(mini("Type", seg(f("option_type"), [["put", "Put"], ["call", "Call"]], i.option_type,
          (v) => { i.option_type = v; this.render(); })));
      }
      if (i.kind === "hashprice_ndf") {
        details.push(mini("Start (UTC)", input(f("start"), i.start, date, set("start"))));
        details.push(mini("Days", input(f("days"), String(i.days), { inputmode: "numeric" },
          (v) => { i.days = v; updateNote(); updateContracts(); })));
      }
      return h("div", { class: "leg", testid: "rfq-leg" },
        h("div", { class: "leg-row" },
          h("span", { class: "leg-no" }, String(idx + 1)),
          seg(`legs[${idx}].side`, [["buy", "Buy"], ["sell", "Sell"]], leg.side,
            (v) => { leg.side = v; this.render(); }, `leg${idx}-side`),
          h("select", { class: "input small", "data-field": f("kind"),
            onchange: (e) => { leg.instrument = blankInstrument(e.target.value, i);
              if (e.target.value === "hashprice_ndf") s.unit = "PH/s/day";
              this.render(); } },
          KINDS.map((k) => h("option", { value: k, selected: k === i.kind }, k === "hashprice_ndf" ? "hashprice NDF" : k))),
          input(f("underlying"), i.underlying, { class: "input small und", title: "underlying" }, set("underlying")),
          s.legs.length > 1 ? h("button", { type: "button", class: "icon-btn", title: "remove leg",
            onclick: () => { s.legs.splice(idx, 1); this.render(); } }, "×") : h("span", {})),
        details.length ? h("div", { class: `leg-row details n${details.length}` }, h("span", {}), details) : null);
    }));
    const addLeg = s.legs.length < 4 ? h("button", { type: "button", class: "link-btn",
      onclick: () => { s.legs.push({ side: "buy", ratio: "1", instrument: blankInstrument("option", s.legs[s.legs.length - 1].instrument) }); this.render(); } },
    "+ add leg") : null;

    const dealerList = h("div", { class: "dealer-list", "data-field": "dealers", testid: "rfq-dealers" },
      ctx.dealers.length ? ctx.dealers.map((d) => {
        const approved = !mandate || Object.prototype.hasOwnProperty.call(mandate.dealers || {}, d.dealer_id);
        return h("label", { class: `dealer-chip ${s.dealers.has(d.dealer_id) ? "on" : ""} ${approved ? "" : "unapproved"}`,
          title: `${d.kind}${d.online ? ", online" : ", offline"}${approved ? "" : `, not approved in ${s.mandate}`}` },
        h("input", { type: "checkbox", testid: `dealer-${d.dealer_id}`, checked: s.dealers.has(d.dealer_id),
          onchange: (e) => { if (e.target.checked) s.dealers.add(d.dealer_id); else s.dealers.delete(d.dealer_id); this.render(); } }),
        h("span", { class: `dot ${d.online ? "on" : "off"}` }), d.dealer_id);
      }) : h("span", { class: "muted" }, "no dealers configured"));

    const count = s.dealers.size;
    clear(this.el,
      h("div", { class: "panel-head" }, h("h2", {}, "New RFQ"),
        h("span", { class: "muted" }, `requester ${ctx.me.name}`)),
      h("div", { class: "panel-body" },
        templates,
        h("p", { class: "hint" }, t.note),
        h("div", { class: "grid2" },
          h("label", { class: "field" }, h("span", {}, "Mandate"), mandateSel),
          h("label", { class: "field" }, h("span", {}, "Direction"), dirSel)),
        privateSel,
        mandateHint ? h("p", { class: "hint mono" }, mandateHint) : null,
        h("div", { class: "field" }, h("span", { class: "with-link" }, "Legs", addLeg), legs),
        h("div", { class: "grid3" },
          h("label", { class: "field" }, h("span", {}, isNdf ? "Hashrate (PH/s)" : "Quantity"),
            input("quantity", s.quantity, { inputmode: "decimal", testid: "rfq-quantity" }, (v) => { s.quantity = v; updateContracts(); })),
          h("label", { class: "field" }, h("span", {}, "Unit"),
            input("quantity_unit", s.unit, { readonly: isNdf, testid: "rfq-unit" }, (v) => { s.unit = v; updateNote(); })),
          h("label", { class: "field" }, h("span", {}, "Window (s)"),
            input("window_ms", s.windowS, { inputmode: "decimal", testid: "rfq-window" }, (v) => { s.windowS = v; }))),
        contractsHint,
        orientationNote,
        h("div", { class: "field" }, h("span", {}, "Dealers ",
          h("button", { type: "button", class: "link-btn", onclick: () => { s.dealers = new Set(ctx.dealers.map((d) => d.dealer_id)); this.render(); } }, "all"),
          " · ",
          h("button", { type: "button", class: "link-btn", onclick: () => { s.dealers.clear(); this.render(); } }, "none")),
        dealerList),
        h("div", { class: "grid3" },
          h("label", { class: "field" }, h("span", {}, "Limit price"),
            input("limit_price", s.limit, { inputmode: "decimal", placeholder: "optional" }, (v) => { s.limit = v; })),
          h("label", { class: "field" }, h("span", {}, "Client id"),
            input("client_rfq_id", s.clientId, { placeholder: "optional" }, (v) => { s.clientId = v; })),
          h("label", { class: "field check" }, h("input", { type: "checkbox", checked: s.allowPartial,
            onchange: (e) => { s.allowPartial = e.target.checked; } }), h("span", {}, "Allow partial"))),
        h("p", { class: "form-error", testid: "rfq-form-error", hidden: true, role: "alert" }),
        h("button", { type: "button", class: `btn primary block dir-${side}`, testid: "rfq-submit",
          disabled: this.ctx.halt.halted || !count,
          onclick: (e) => this.submit(e.currentTarget) },
        this.ctx.halt.halted ? "Engine halted"
          : `Request ${s.direction === "two_way" ? "two-way quotes" : `${priceSide}s`} from ${count} dealer${count === 1 ? "" : "s"}`)));
  }
}
