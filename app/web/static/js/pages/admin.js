import { api, boot, el, $, on, show, errorText, confirmDialog, notify, showFormError, clearFormError } from "../app.js";

boot();
const problem = $("main > .form-error");
const me = document.body.dataset.userId;
const STOP_CONSEQUENCES =
  "Stop ALL trading now? Every open order of every user is cancelled, every running bot is " +
  "paused, and no worker places another order until trading is resumed. After resuming, " +
  "bots stay paused until their owners resume them.";
const RESUME_CONSEQUENCES =
  "Resume trading? Orders may be placed again; paused bots stay paused until their owners resume them.";

function table(target, items, cells, empty) {
  const body = $(`${target} tbody`);
  const cols = $(`${target} thead tr`).children.length;
  body.replaceChildren(...(items.length
    ? items.map((item) => el("tr", {}, ...cells(item).map((c) => (c instanceof Node ? el("td", {}, c) : el("td", {}, c ?? "–")))))
    : [el("tr", {}, el("td", { colspan: cols }, empty))]));
}

async function emergency() {
  const s = await api("/api/emergency-stop/status");
  $("#stop-state").textContent = s.active
    ? `Trading is STOPPED since ${s.changed_at} (by user ${s.changed_by_user_id}): ${s.reason}`
    : "Trading is running normally.";
  $("#stop-button").disabled = false;
  $("#resume-button").disabled = !s.active;
}

async function users() {
  const page = await api("/api/admin/users?per_page=200");
  table("#users", page.items, (u) => {
    const role = el("select", { "aria-label": `role of ${u.email}`, disabled: String(u.id) === me },
      ...["user", "admin"].map((r) => el("option", { value: r, selected: r === u.role }, r)));
    role.addEventListener("change", () => patch(u, { role: role.value }));
    const disabled = el("input", { type: "checkbox", "aria-label": `disable ${u.email}`,
      checked: u.is_disabled, disabled: String(u.id) === me });
    disabled.addEventListener("change", () => patch(u, { is_disabled: disabled.checked }));
    return [u.email, role, disabled, u.created_at];
  }, "No users.");
}

async function patch(user, change) {
  try {
    await api(`/api/admin/users/${user.id}`, { method: "PATCH", body: change });
    notify(`${user.email} updated.`);
  } catch (err) {
    show(problem, errorText(err));
  }
  users();
}

async function alerts() {
  const page = await api("/api/alerts?limit=50");
  table("#alerts", page.items, (a) => {
    if (a.acknowledged_at) return [a.created_at, a.severity, a.message, a.acknowledged_at];
    const ack = el("button", { type: "button", class: "secondary" }, "Acknowledge");
    ack.addEventListener("click", async () => {
      try { await api(`/api/alerts/${a.id}/ack`, { method: "POST" }); alerts(); }
      catch (err) { show(problem, errorText(err)); }
    });
    return [a.created_at, a.severity, a.message, ack];
  }, "No alerts.");
}

async function incidents() {
  const page = await api("/api/admin/incidents?limit=50");
  table("#incidents", page.items, (i) => [i.created_at, i.kind, i.bot_id ? `#${i.bot_id}` : "–", i.message],
    "No incidents.");
}

async function audit() {
  const page = await api("/api/admin/audit-log?per_page=50");
  table("#audit", page.items, (a) => [a.created_at, a.action, a.actor_user_id, a.target_user_id, a.ip],
    "Nothing audited yet.");
}

async function load() {
  try {
    await Promise.all([emergency(), users(), alerts(), incidents(), audit()]);
    document.body.dataset.loaded = "true";
  } catch (err) {
    show(problem, errorText(err));
  }
}

const stopForm = $("#stop-form");
stopForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(stopForm);
  if (!(await confirmDialog(STOP_CONSEQUENCES, { confirm: "Stop all trading", danger: true }))) return;
  try {
    const result = await api("/api/admin/emergency-stop", { method: "POST", body: { reason: $("#stop-reason").value } });
    notify(`Trading stopped: ${result.cancelled_orders} orders cancelled, ${result.paused_bots} bots paused.`);
    document.dispatchEvent(new CustomEvent("tw:refresh-emergency"));
    load();
  } catch (err) {
    showFormError(stopForm, err);
  }
});
$("#resume-button").addEventListener("click", async () => {
  if (!(await confirmDialog(RESUME_CONSEQUENCES, { confirm: "Resume trading" }))) return;
  try {
    await api("/api/admin/emergency-resume", { method: "POST", body: {} });
    notify("Trading resumed; bots stay paused for review.");
    document.dispatchEvent(new CustomEvent("tw:refresh-emergency"));
    load();
  } catch (err) {
    show(problem, errorText(err));
  }
});
on("alert", () => alerts().catch(() => {}));
load();
