import { api, boot, el, on, show, errorText, fmtPct, sparkline } from "../app.js";

boot();
const body = document.querySelector("#bots-table tbody");
const problem = document.querySelector(".form-error");
const rows = new Map();

function profitCell(summary) {
  const value = Number(summary.profit);
  const cls = value > 0 ? "up" : value < 0 ? "down" : "";
  const pct = summary.profit_pct === null ? "" : ` (${fmtPct(summary.profit_pct)})`;
  return el("td", { class: `num ${cls}`, "data-col": "profit" }, `${summary.profit}${pct}`);
}

function row(bot) {
  const s = bot.summary;
  return el("tr", { "data-bot-id": bot.id },
    el("th", { scope: "row" }, el("a", { href: `/bots/${bot.id}` }, bot.name)),
    el("td", { "data-col": "status" }, el("span", { class: `badge ${bot.status}` }, bot.status),
      bot.pause_reason ? el("span", { class: "hint" }, ` ${bot.pause_reason}`) : null),
    el("td", {}, bot.mode),
    el("td", {}, bot.symbol),
    el("td", {}, bot.strategy),
    profitCell(s),
    el("td", { class: "num", "data-col": "drawdown" }, fmtPct(s.max_drawdown * 100)),
    el("td", { "data-col": "equity" },
      sparkline(s.curve, { label: `equity of ${bot.name}: ${s.equity} ${bot.symbol.split("/")[1] || ""}` })));
}

async function load() {
  try {
    const page = await api("/api/bots/overview?limit=200");
    body.replaceChildren();
    rows.clear();
    for (const bot of page.items) {
      const tr = row(bot);
      rows.set(bot.id, tr);
      body.append(tr);
    }
    document.getElementById("bots-empty").hidden = page.total > 0;
    document.querySelector(".table-wrap").hidden = page.total === 0;
    const more = document.getElementById("bots-more");
    show(more, page.total > page.items.length ? `Showing ${page.items.length} of ${page.total} bots.` : "");
    show(problem, "");
    document.body.dataset.renderedMs = String(Math.round(performance.now()));
    document.body.dataset.loaded = "true";
  } catch (err) {
    show(problem, errorText(err));
  }
}

// A trade or status change refreshes the table (one request however many bots changed).
let pending = null;
function refreshSoon(botId) {
  if (botId !== undefined && !rows.has(botId)) return;
  clearTimeout(pending);
  pending = setTimeout(async () => {
    await load();
    const tr = rows.get(botId);
    if (tr) tr.classList.add("flash");
  }, 300);
}
for (const type of ["trade", "bot_status"]) on(type, (data) => refreshSoon(data.bot_id));
on("resync", () => refreshSoon());
// The emergency stop pauses every bot without a per-bot event: reload when it flips.
let halted = null;
document.addEventListener("tw:emergency", (e) => {
  if (halted !== null && halted !== e.detail.active) refreshSoon();
  halted = e.detail.active;
});
load();
