import { api, boot, el, $, on, show, errorText, fmtPct, confirmDialog, notify } from "../app.js";

boot();
const LW = window.LightweightCharts;
const { botId, symbol, timeframe } = document.body.dataset;
const problem = $(".form-error");
let bot = null;

const ENABLED = {
  start: ["created", "stopped"],
  pause: ["running"],
  resume: ["paused"],
  stop: ["created", "running", "paused"],
  exit: ["running", "paused"],
  delete: ["created", "stopped"],
};
const CONFIRM = {
  stop: "Stop this bot? It stops ticking; an open position stays open until you exit it.",
  exit: "Sell the whole position at market on the next tick? The bot keeps running.",
  delete: "Delete this bot? It disappears from your dashboard; its history is kept.",
};

// -- charts --------------------------------------------------------------------------------

function chart(id, height) {
  return LW.createChart($(id), {
    autoSize: true,
    height,
    layout: { background: { color: "#ffffff" }, textColor: "#16202c", attributionLogo: false },
    grid: { vertLines: { color: "#eef1f5" }, horzLines: { color: "#eef1f5" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
}
const priceChart = chart("#price-chart");
const candleSeries = priceChart.addSeries(LW.CandlestickSeries, {
  upColor: "#0a7a3b", downColor: "#b3261e", borderVisible: false,
  wickUpColor: "#0a7a3b", wickDownColor: "#b3261e", priceFormat: { type: "price", precision: 6, minMove: 0.000001 },
});
const markers = LW.createSeriesMarkers(candleSeries, []);
const equitySeries = chart("#equity-chart").addSeries(LW.LineSeries, {
  color: "#0b5cad", lineWidth: 2, priceFormat: { type: "price", precision: 6, minMove: 0.000001 },
});
const drawdownSeries = chart("#drawdown-chart").addSeries(LW.AreaSeries, {
  lineColor: "#b3261e", topColor: "rgba(179,38,30,0.05)", bottomColor: "rgba(179,38,30,0.35)",
  priceFormat: { type: "percent" },
});

const seconds = (iso) => Math.floor(Date.parse(iso) / 1000);

function uniqueByTime(points) {
  const out = [];
  for (const p of points) {
    if (out.length && out[out.length - 1].time >= p.time) out[out.length - 1] = p;
    else out.push(p);
  }
  return out;
}

async function loadCandles() {
  const data = await api(`/api/markets/${symbol}/candles?timeframe=${encodeURIComponent(timeframe)}&limit=300`);
  candleSeries.setData(data.candles.map((c) => ({
    time: seconds(c[0]), open: c[1], high: c[2], low: c[3], close: c[4],
  })));
}

function drawEquity(items) {
  const points = uniqueByTime(items.map((p) => ({ time: seconds(p.ts), value: Number(p.equity) })));
  equitySeries.setData(points);
  let peak = -Infinity;
  drawdownSeries.setData(points.map((p) => {
    peak = Math.max(peak, p.value);
    return { time: p.time, value: peak > 0 ? (p.value / peak - 1) * 100 : 0 };
  }));
}

function drawMarkers(fills) {
  const list = fills
    .filter((f) => f.candle_ts || f.filled_at)
    .map((f) => ({
      time: seconds(f.candle_ts || f.filled_at),
      position: f.side === "buy" ? "belowBar" : "aboveBar",
      shape: f.side === "buy" ? "arrowUp" : "arrowDown",
      color: f.side === "buy" ? "#0a7a3b" : "#b3261e",
      text: f.side === "buy" ? "entry" : "exit",
    }))
    .sort((a, b) => a.time - b.time);
  markers.setMarkers(list);
  document.body.dataset.markers = String(list.length);
}

// -- tables and cards ----------------------------------------------------------------------

function cards(target, entries) {
  $(target).replaceChildren(...entries.map(([label, value]) =>
    el("div", {}, el("dt", {}, label), el("dd", {}, value ?? "–"))));
}

function rows(target, items, cells, empty) {
  const body = $(`${target} tbody`);
  if (!items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: $(`${target} thead tr`).children.length }, empty)));
    return;
  }
  body.replaceChildren(...items.map((item) => el("tr", {}, ...cells(item).map((c, i) =>
    el("td", { class: i > 1 && /^-?[\d.]/.test(String(c)) ? "num" : null }, c ?? "–")))));
}

function roundTrips(fills, orders) {
  const reasons = Object.fromEntries(orders.map((o) => [o.id, o.reason]));
  const trips = [];
  let open = null;
  for (const f of [...fills].sort((a, b) => a.id - b.id)) {
    const amount = Number(f.amount);
    if (f.side === "buy") {
      open ||= { entry: f.candle_ts || f.filled_at, amount: 0, cost: 0 };
      open.amount += amount;
      open.cost += amount * Number(f.price);
    }
    if (f.closed_trade_pnl !== null && f.closed_trade_pnl !== undefined) {
      trips.push({
        entry: open ? open.entry : "–",
        exit: f.candle_ts || f.filled_at,
        amount: open ? String(open.amount) : f.amount,
        entryPrice: open && open.amount ? (open.cost / open.amount).toPrecision(8) : "–",
        exitPrice: f.price,
        pnl: f.closed_trade_pnl,
        reason: reasons[f.order_id] || "–",
      });
      open = null;
    }
  }
  return trips.reverse();
}

function controls() {
  for (const button of document.querySelectorAll("#controls [data-action]")) {
    const allowed = (ENABLED[button.dataset.action] || []).includes(bot.status);
    button.disabled = !allowed;
  }
  const badge = $("#bot-status");
  badge.textContent = bot.status;
  badge.className = `badge ${bot.status}`;
  $("#pause-reason").textContent = bot.pause_reason ? `paused: ${bot.pause_reason}` : "";
}

function protections() {
  const set = bot.protections || {};
  const keys = ["max_drawdown", "daily_loss_limit", "max_losing_streak", "losing_streak_cooldown_minutes",
    "stoploss_guard_trades", "stoploss_guard_window_minutes", "stoploss_guard_cooldown_minutes",
    "trade_cooldown_minutes"];
  rows("#protections", keys, (k) => [k.replaceAll("_", " "),
    k in set ? (set[k] === null ? "off" : String(set[k])) : "server default"], "");
  const tripped = bot.status === "paused" && bot.pause_reason &&
    !["owner", "user", "manual"].includes(bot.pause_reason);
  $("#protection-state").textContent = tripped
    ? `Tripped: the bot is paused (${bot.pause_reason}).`
    : "No protection holds the bot now.";
}

async function load() {
  try {
    const base = `/api/bots/${botId}`;
    const [b, perf, pos, orders, trades, equity, gates] = await Promise.all([
      api(base), api(`${base}/performance`), api(`${base}/positions`),
      api(`${base}/orders?limit=200`), api(`${base}/trades?limit=1000`),
      api(`${base}/equity?limit=2000`), api(`${base}/live-eligibility`),
    ]);
    bot = b;
    controls();
    protections();
    drawEquity(equity.items);
    drawMarkers(trades.items);
    const m = perf.metrics;
    cards("#performance", [
      ["Total return", m.total_return === null ? null : fmtPct(m.total_return * 100)],
      ["Max drawdown", fmtPct(m.max_drawdown * 100)],
      ["Sharpe", m.sharpe === null ? null : Number(m.sharpe).toFixed(2)],
      ["Sortino", m.sortino === null ? null : Number(m.sortino).toFixed(2)],
      ["Closed trades", String(m.n_trades)],
      ["Win rate", m.win_rate === null ? null : fmtPct(m.win_rate * 100)],
      ["Profit factor", m.profit_factor === null ? null : String(m.profit_factor)],
      ["Exposure", m.exposure === null ? null : fmtPct(m.exposure * 100)],
    ]);
    const p = pos.items[0];
    cards("#position", p ? [
      ["Amount", `${p.amount} ${p.base}`], ["Avg entry", p.avg_entry_price], ["Price", p.price],
      ["Unrealised", p.unrealised_pnl], ["Realised", p.realised_pnl], ["Cash", `${p.cash} ${p.quote}`],
      ["Equity", p.equity], ["Open orders", String(p.open_orders)],
    ] : [["Position", "none yet"]]);
    $("#live-allowed").textContent = gates.live_allowed
      ? "This bot may graduate to live trading."
      : "Live trading is not allowed yet:";
    $("#gates").replaceChildren(...gates.reasons.map((r) => el("li", {}, r.message)));
    rows("#round-trips", roundTrips(trades.items, orders.items),
      (t) => [t.entry, t.exit, t.amount, t.entryPrice, t.exitPrice, t.pnl, t.reason], "No closed round trip yet.");
    rows("#trades", trades.items, (f) => [f.filled_at, f.side, f.amount, f.price, f.fee, f.closed_trade_pnl],
      "No fill yet.");
    rows("#orders", orders.items, (o) => [o.created_at, o.side, o.state, o.amount ?? o.quote_amount,
      o.average_price, o.reason], "No order yet.");
    document.body.dataset.trades = String(trades.items.length);
    show(problem, "");
  } catch (err) {
    show(problem, errorText(err));
  }
}

async function refreshChart() {
  try { await loadCandles(); } catch (err) { show(problem, errorText(err)); }
}

async function act(action) {
  if (CONFIRM[action] && !(await confirmDialog(CONFIRM[action], { confirm: action, danger: action === "delete" }))) return;
  try {
    if (action === "delete") {
      await api(`/api/bots/${botId}`, { method: "DELETE" });
      location.assign("/bots");
      return;
    }
    bot = await api(`/api/bots/${botId}/${action}`, { method: "POST" });
    controls();
    notify(`Bot ${action} requested.`);
    load();
  } catch (err) {
    show(problem, errorText(err));
  }
}

document.querySelectorAll("#controls [data-action]").forEach((b) =>
  b.addEventListener("click", () => act(b.dataset.action)));

let pending = null;
function soon() {
  clearTimeout(pending);
  pending = setTimeout(async () => { await refreshChart(); await load(); }, 250);
}
for (const type of ["trade", "order", "bot_status"]) {
  on(type, (data) => { if (String(data.bot_id) === botId) soon(); });
}
on("resync", soon);
let halted = null;
document.addEventListener("tw:emergency", (e) => {
  if (halted !== null && halted !== e.detail.active) soon();
  halted = e.detail.active;
});
setInterval(refreshChart, 15000);
refreshChart().then(load).then(() => { document.body.dataset.loaded = "true"; });
