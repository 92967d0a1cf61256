// The REST API and the live stream. The bearer token lives in sessionStorage only (gone
// when the tab closes), is sent in the Authorization header, and is never logged.

const TOKEN_KEY = "rfq.token";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const reason = (body && body.reason) || `HTTP ${status}`;
    super(body && body.field ? `${body.field}: ${reason}` : reason);
    this.status = status;
    this.kind = body && body.error;
    this.field = body && body.field;
    this.reason = reason;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const token = session.token;
  if (token) out.Authorization = `Bearer ${token}`;
  return out;
}

export async function api(path, { method = "GET", body, headers: extra } = {}) {
  const init = { method, headers: headers(extra) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(0, { error: "network", reason: "the server cannot be reached" });
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: "bad_response", reason: text.slice(0, 200) };
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    if (resp.status === 401) onUnauthorized(err);
    throw err;
  }
  return data;
}

// Downloads need the Authorization header, so fetch to a Blob, then save it.
export async function download(path, filename) {
  const resp = await fetch(path, { headers: headers({ Accept: "*/*" }) });
  if (!resp.ok) {
    let body = null;
    try { body = await resp.json(); } catch { /* not JSON */ }
    throw new ApiError(resp.status, body);
  }
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob.size;
}

// WebSocket /api/v1/stream: {"type":"hello"}, then every audited event. Reconnects with
// backoff; `onOpen` runs on each (re)connect so the caller can resync what it missed.
export class Stream {
  constructor({ onEvent, onStatus, onOpen }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus || (() => {});
    this.onOpen = onOpen || (() => {});
    this.ws = null;
    this.stopped = false;
    this.delay = 500;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    const token = session.token;
    if (!token || this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.onStatus("connecting");
    const ws = new WebSocket(`${scheme}://${location.host}/api/v1/stream?token=${encodeURIComponent(token)}`);
    this.ws = ws;
    ws.onmessage = (msg) => {
      let data;
      try { data = JSON.parse(msg.data); } catch { return; }
      if (data.type === "hello") {
        this.delay = 500;
        this.onStatus("live");
        this.onOpen(data);
        return;
      }
      this.onEvent(data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      this.onStatus("down");
      this.timer = setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
    this.onStatus("off");
  }
}
