// The web UI of `rfq serve`: login, routing, the live stream, the engine's kill switch.
// Pages: blotter.js (traders, approvers), compliance.js (search and decision records),
// scorecards.js (dealer scorecards with charts). Everything is role-aware via /api/v1/me.

import { Stream, api, session, setUnauthorizedHandler } from "./api.js";
import * as blotter from "./blotter.js";
import * as compliance from "./compliance.js";
import * as programs from "./programs.js";
import * as risk from "./risk.js";
import { applyEvent, emptyRecord, fromView } from "./record.js";
import * as scenario from "./scenario.js";
import * as scorecards from "./scorecards.js";
import { LIVE, TERMINAL, clear, h } from "./util.js";

const $ = (id) => document.getElementById(id);
const MAX_RECORDS = 400;

// ---------------------------------------------------------------- records (one per RFQ)

class Records extends EventTarget {
  constructor() {
    super();
    this.map = new Map();
    this.loading = new Map(); // rfq_id -> events that arrived while a snapshot was in flight
  }

  get(id) {
    return this.map.get(id);
  }

  emit(id, ev = null) {
    this.dispatchEvent(new CustomEvent("change", { detail: { id, ev } }));
  }

  apply(ev) {
    if (!ev.rfq_id) return;
    const buffer = this.loading.get(ev.rfq_id);
    if (buffer) buffer.push(ev);
    let rec = this.map.get(ev.rfq_id);
    if (!rec && ev.type === "rfq.submitted") {
      rec = emptyRecord(ev.rfq_id);
      this.map.set(ev.rfq_id, rec);
    }
    if (rec && applyEvent(rec, ev)) this.emit(ev.rfq_id, ev);
    if (this.map.size > MAX_RECORDS) this.prune();
  }

  // A long session sees many RFQs: forget the oldest finished ones no card shows.
  prune() {
    for (const [id, rec] of this.map) {
      if (this.map.size <= MAX_RECORDS / 2) break;
      if (TERMINAL.has(rec.state) && !ctx.shownCards.includes(id) && !this.loading.has(id)) this.map.delete(id);
    }
  }

  // A view the API already returned (POST /rfqs): the stream may have been faster.
  seed(view) {
    const known = this.map.get(view.rfq_id);
    if (known && !known.summaryOnly && known.spec) return known;
    const rec = fromView(view);
    this.map.set(view.rfq_id, rec);
    this.emit(view.rfq_id);
    return rec;
  }

  async load(id) {
    const buffer = [];
    this.loading.set(id, buffer);
    try {
      const view = await api(`/api/v1/rfqs/${encodeURIComponent(id)}`);
      const rec = fromView(view);
      for (const ev of buffer) applyEvent(rec, ev); // events newer than the snapshot
      this.map.set(id, rec);
      this.emit(id);
      return rec;
    } finally {
      if (this.loading.get(id) === buffer) this.loading.delete(id);
    }
  }
}

// ---------------------------------------------------------------- context shared by pages

const ctx = {
  me: null,
  records: new Records(),
  bus: new EventTarget(), // "event" (every stream event), "halt", "resync"
  dealers: [],
  mandates: {},
  halt: { halted: false, reason: null },
  shownCards: [], // rfq ids with a card on the blotter, newest first
  may(action) {
    return !!(this.me && this.me.may.includes(action));
  },
  toast,
  async refreshDealers() {
    try {
      this.dealers = (await api("/api/v1/dealers")).dealers;
    } catch (err) {
      toast(`dealers: ${err.message}`, "error");
    }
    return this.dealers;
  },
};

let stream = null;
let page = null;
let clockTimer = null;

function toast(message, kind = "info") {
  const box = $("toasts");
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.appendChild(el);
  setTimeout(() => el.classList.add("fade"), 4200);
  setTimeout(() => el.remove(), 5000);
}

// ---------------------------------------------------------------- login / logout

function showLogin(message = "") {
  $("shell").hidden = true;
  $("login").hidden = false;
  const err = $("login-error");
  err.hidden = !message;
  err.textContent = message;
  $("token-input").value = "";
  $("token-input").focus();
}

async function signIn(token) {
  // the message shown is always the latest attempt's: an earlier refusal must not read as this one's
  const shown = $("login-error");
  shown.hidden = true;
  shown.textContent = "";
  session.set(token);
  try {
    ctx.me = await api("/api/v1/me");
  } catch (err) {
    session.clear();
    const expired = err.status === 401 && /expired/.test(err.reason);
    showLogin(err.status === 401 && !expired ? "That token is not recognised." : `Sign-in failed: ${err.message}`);
    return;
  }
  $("login").hidden = true;
  $("shell").hidden = false;
  renderUser();
  await Promise.all([
    ctx.refreshDealers(),
    api("/api/v1/mandates").then((m) => { ctx.mandates = m.mandates; }).catch(() => {}),
    refreshHalt(),
  ]);
  startStream();
  startClock();
  risk.startBanner($("risk-banner"));
  route();
}

function logout() {
  if (stream) stream.stop();
  stream = null;
  if (page && page.unmount) page.unmount();
  page = null;
  clearInterval(clockTimer);
  risk.stopBanner();
  session.clear();
  ctx.me = null;
  ctx.records = new Records();
  ctx.shownCards = [];
  clear($("view"));
  clear($("toasts")); // nothing of this session stays on screen for the next user
  location.hash = "";
  showLogin();
}

setUnauthorizedHandler(() => {
  if (ctx.me) {
    logout();
    showLogin("Your session is no longer valid. Sign in again.");
  }
});

function renderUser() {
  const me = ctx.me;
  clear($("user-badge"), h("b", {}, me.name), " · ", me.roles.join(", "));
  for (const link of document.querySelectorAll("#nav a")) {
    const r = link.dataset.route;
    link.hidden = r === "compliance" && !ctx.may("audit:read");
  }
}

// ---------------------------------------------------------------- stream

function startStream() {
  if (stream) stream.stop();
  let first = true;
  stream = new Stream({
    onEvent(ev) {
      if (ev.type === "rfq.changed") { // this page fell behind: the server coalesced its events
        ctx.records.load(ev.rfq_id).then(() => ctx.bus.dispatchEvent(new CustomEvent("resync")))
          .catch(() => {});
        return;
      }
      if (ev.type === "engine.kill_switch") {
        setHalt({ halted: !!ev.payload.halted, reason: ev.payload.reason || null });
      }
      ctx.records.apply(ev);
      ctx.bus.dispatchEvent(new CustomEvent("event", { detail: ev }));
    },
    onStatus(status) {
      const el = $("stream-status");
      el.className = `stream-status ${status}`;
      el.textContent = status === "live" ? "live" : status === "connecting" ? "connecting" : "offline";
      el.dataset.state = status;
    },
    onOpen(hello) {
      setHalt({ halted: !!hello.halted, reason: hello.halted || null });
      if (!first) resync(); // events were missed while disconnected
      first = false;
    },
  });
  stream.start();
}

async function resync() {
  for (const [id, rec] of ctx.records.map) {
    if (LIVE.includes(rec.state)) ctx.records.load(id).catch(() => {});
  }
  ctx.bus.dispatchEvent(new CustomEvent("resync"));
}

// ---------------------------------------------------------------- kill switch

async function refreshHalt() {
  try {
    setHalt(await api("/api/v1/admin/halt"));
  } catch { /* shown as unknown */ }
}

function setHalt(status) {
  ctx.halt = { halted: !!status.halted, reason: status.reason || null };
  renderEngineStatus();
  ctx.bus.dispatchEvent(new CustomEvent("halt", { detail: ctx.halt }));
}

function renderEngineStatus() {
  const box = $("engine-status");
  const { halted, reason } = ctx.halt;
  const pill = h("span", { class: `pill ${halted ? "bad" : "good"}`, testid: "halt-status",
    title: halted ? `halted: ${reason}` : "accepting RFQs" },
  halted ? `HALTED · ${reason}` : "Engine live");
  const parts = [pill];
  if (ctx.may("admin:halt")) {
    if (halted) {
      parts.push(h("button", { class: "btn small", testid: "resume", type: "button",
        onclick: resumeEngine }, "Resume"));
    } else {
      parts.push(h("button", { class: "btn small danger", testid: "kill-switch", type: "button",
        onclick: askHalt }, "Kill switch"));
    }
  }
  clear(box, parts);
}

function askHalt() {
  const box = $("engine-status");
  const reason = h("input", { type: "text", placeholder: "reason (recorded in the audit log)",
    testid: "halt-reason", class: "input small", size: 30 });
  const confirm = h("button", { class: "btn small danger", type: "button", testid: "halt-confirm",
    onclick: async () => {
      if (!reason.value.trim()) { reason.focus(); return; }
      confirm.disabled = true;
      try {
        const res = await api("/api/v1/admin/halt", { method: "POST", body: { reason: reason.value.trim() } });
        setHalt(res);
        toast(`Engine halted; ${res.cancelled.length} open RFQ(s) cancelled`, "warn");
      } catch (err) {
        toast(`Kill switch: ${err.message}`, "error");
        renderEngineStatus();
      }
    } }, "Halt and cancel open RFQs");
  const cancel = h("button", { class: "btn small ghost", type: "button", onclick: renderEngineStatus }, "Cancel");
  clear(box, h("span", { class: "pill bad" }, "Kill switch"), reason, confirm, cancel);
  reason.focus();
}

async function resumeEngine() {
  try {
    setHalt(await api("/api/v1/admin/resume", { method: "POST", body: {} }));
    toast("Engine resumed: new RFQs are accepted", "info");
  } catch (err) {
    toast(`Resume: ${err.message}`, "error");
  }
}

function startClock() {
  clearInterval(clockTimer);
  const tick = () => { $("clock").textContent = `${new Date().toISOString().slice(11, 19)} UTC`; };
  tick();
  clockTimer = setInterval(tick, 1000);
}

// ---------------------------------------------------------------- routing

function defaultRoute() {
  return ctx.may("rfq:create") || ctx.may("rfq:approve") || !ctx.may("audit:read") ? "#/blotter" : "#/compliance";
}

function route() {
  if (!ctx.me) return;
  const hash = location.hash || defaultRoute();
  const [, name = "", arg = ""] = hash.split("/");
  let next;
  if (name === "blotter") next = blotter;
  else if (name === "compliance" && ctx.may("audit:read")) next = compliance;
  else if (name === "dealers") next = scorecards;
  else if (name === "scenarios") next = scenario;
  else if (name === "programs") next = programs;
  else if (name === "risk") next = risk;
  else {
    location.replace(defaultRoute());
    return;
  }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.route === name);
  }
  if (page && page.unmount) page.unmount();
  const view = clear($("view"));
  page = next;
  page.mount(view, ctx, decodeURIComponent(arg));
}

window.addEventListener("hashchange", route);

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token-input").value.trim();
    if (token) signIn(token);
  });
  $("logout").addEventListener("click", logout);
  if (session.token) signIn(session.token);
  else showLogin();
});
