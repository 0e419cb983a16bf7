// Shared by every page: the JSON API with the session cookie and its CSRF token, renewing
// the session once when the access token expires, errors in the envelope's words, the event
// stream, and the emergency-stop banner.

export class ApiError extends Error {
  constructor(status, envelope) {
    const err = (envelope && envelope.error) || {};
    super(err.message || `request failed (${status})`);
    this.status = status;
    this.code = err.code || "http_" + status;
    this.details = err.details || [];
    this.requestId = err.request_id || "";
  }
}

export function cookie(name) {
  const hit = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return hit ? decodeURIComponent(hit.slice(name.length + 1)) : "";
}

let renewing = null;

// One renewal at a time, across tabs too (Web Locks): a tab that waited for another's
// renewal finds new cookies and does not spend the (already rotated) refresh token again.
export function renewSession(usedCsrf) {
  const run = async () => {
    if (usedCsrf !== undefined && cookie("csrf_access_token") !== usedCsrf) return true;
    const r = await fetch("/api/auth/session/refresh", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-TOKEN": cookie("csrf_refresh_token") },
    });
    return r.ok;
  };
  if (!renewing) {
    const task = navigator.locks ? navigator.locks.request("tw-session", run) : run();
    renewing = task.finally(() => { renewing = null; });
  }
  return renewing;
}

export function signInAgain() {
  const here = location.pathname + location.search;
  location.assign("/login?next=" + encodeURIComponent(here));
}

export async function api(path, { method = "GET", body, retry = true } = {}) {
  const headers = { Accept: "application/json" };
  const csrf = cookie("csrf_access_token");
  if (method !== "GET") headers["X-CSRF-TOKEN"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 401 && retry && !path.startsWith("/api/auth/session")) {
    if (await renewSession(csrf)) return api(path, { method, body, retry: false });
    signInAgain();
  }
  if (r.status === 204) return null;
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

// -- rendering helpers -------------------------------------------------------------------

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function show(node, text) {
  if (!node) return;
  node.textContent = text || "";
  node.hidden = !text;
}

// An error in the envelope's words, with its request id for support.
export function errorText(err) {
  if (err instanceof ApiError) {
    return err.requestId ? `${err.message} (request ${err.requestId})` : err.message;
  }
  return String(err && err.message ? err.message : err);
}

// Validation details next to their fields (`loc` ends with the field name); the rest in the
// form's own error line. Returns true when every detail found a field.
export function showFormError(form, err) {
  form.querySelectorAll(".field-error").forEach((p) => show(p, ""));
  form.querySelectorAll("[aria-invalid]").forEach((i) => i.removeAttribute("aria-invalid"));
  let placed = 0;
  for (const d of (err && err.details) || []) {
    const loc = (d.loc || []).filter((p) => p !== "body");
    const name = loc.join(".");
    const slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) ||
      form.querySelector(`#${CSS.escape(loc[loc.length - 1] || "_")}-error`) ||
      form.querySelector(`[data-error-for="${CSS.escape(String(loc[0] || ""))}"]`);
    if (slot) {
      show(slot, d.msg);
      const input = slot.closest(".field")?.querySelector("input, select, textarea");
      if (input) input.setAttribute("aria-invalid", "true");
      placed += 1;
    }
  }
  const general = form.querySelector(".form-error");
  const allPlaced = placed > 0 && placed === ((err && err.details) || []).length;
  show(general, allPlaced ? "" : errorText(err));
  return allPlaced;
}

export function clearFormError(form) {
  form.querySelectorAll(".field-error, .form-error").forEach((p) => show(p, ""));
}

export function fmtPct(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${Number(value).toFixed(digits)} %`;
}

export function sparkline(values, { width = 120, height = 32, label = "equity" } = {}) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.classList.add("spark");
  if (values.length >= 2) {
    const lo = Math.min(...values);
    const hi = Math.max(...values);
    const span = hi - lo || 1;
    const pts = values.map((v, i) =>
      `${((i / (values.length - 1)) * (width - 2) + 1).toFixed(1)},` +
      `${(height - 1 - ((v - lo) / span) * (height - 2)).toFixed(1)}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.classList.add(values[values.length - 1] >= values[0] ? "up" : "down");
    svg.append(line);
  }
  return svg;
}

export function confirmDialog(message, { confirm = "Confirm", danger = false } = {}) {
  return new Promise((resolve) => {
    const dialog = el("dialog", { class: "confirm", "aria-labelledby": "confirm-text" },
      el("p", { id: "confirm-text", text: message }),
      el("div", { class: "actions" },
        el("button", { type: "button", class: "secondary", value: "no", text: "Cancel" }),
        el("button", { type: "button", class: danger ? "danger" : "", value: "yes", text: confirm })));
    dialog.addEventListener("click", (e) => {
      if (e.target instanceof HTMLButtonElement) dialog.close(e.target.value);
    });
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function notify(text) {
  const box = $("#notice");
  show(box, text);
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => show(box, ""), 6000);
}

// -- live events -------------------------------------------------------------------------

const listeners = {};
let source = null;

export function on(type, handler) {
  (listeners[type] ||= []).push(handler);
  if (!source) connect();
}

function connect() {
  source = new EventSource("/api/realtime/events");
  for (const type of ["trade", "order", "bot_status", "alert", "job_progress", "resync"]) {
    source.addEventListener(type, (e) => {
      let event;
      try { event = JSON.parse(e.data); } catch { return; }
      for (const fn of listeners[type] || []) fn(event.data || {}, event);
    });
  }
  source.addEventListener("error", () => {
    // The server ends a stream when its token expires: renew, then reconnect.
    if (source.readyState !== EventSource.CLOSED) return;
    source = null;
    setTimeout(async () => {
      if (await renewSession()) connect();
    }, 2000);
  });
}

// -- every page --------------------------------------------------------------------------

async function emergencyBanner() {
  const box = $("#emergency");
  try {
    const state = await api("/api/emergency-stop/status");
    const text = state.active
      ? `Emergency stop: all trading is halted${state.reason ? ` (${state.reason})` : ""}. ` +
        "Bots stay paused until an administrator resumes trading and you resume them."
      : "";
    show(box, text);
    document.body.classList.toggle("halted", Boolean(state.active));
    document.dispatchEvent(new CustomEvent("tw:emergency", { detail: state }));
  } catch { /* the page's own calls show errors */ }
}

// A table wider than the screen scrolls in its box: the box must be reachable by keyboard.
function scrollableTables() {
  document.querySelectorAll(".table-wrap:not([tabindex])").forEach((box) => {
    const caption = box.querySelector("caption");
    box.setAttribute("tabindex", "0");
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", caption ? caption.textContent : "table");
  });
}

export function boot() {
  scrollableTables();
  const out = $("#sign-out");
  if (out) {
    out.addEventListener("click", async () => {
      try { await api("/api/auth/session", { method: "DELETE", retry: false }); } catch { /* gone */ }
      location.assign("/login");
    });
  }
  if (document.body.dataset.role) {
    emergencyBanner();
    setInterval(emergencyBanner, 10000);
    document.addEventListener("tw:refresh-emergency", emergencyBanner);
    on("alert", (data) => {
      if (String(data.code || "").startsWith("emergency")) emergencyBanner();
    });
  }
}
