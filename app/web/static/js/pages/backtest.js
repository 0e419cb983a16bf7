import { boot, el, $, fmtPct } from "../app.js";
import { cards, fixed, followJob } from "../jobs.js";

boot();
const id = document.body.dataset.backtestId;

function report(result) {
  const s = result.summary;
  const m = result.metrics;
  cards("#summary", [
    ["Strategy", s.strategy],
    s.symbols && s.symbols.length > 1 ? ["Pairs", s.symbols.join(", ")] : ["Symbol", s.symbol],
    ...(s.symbols && s.symbols.length > 1 ? [["Max open trades", String(s.max_open_trades)]] : []),
    ["Timeframe", s.timeframe],
    ["From", s.start], ["Until", s.end], ["Candles", String(s.candles)],
    ["Capital", s.capital], ["Final equity", s.final_equity], ["Trades", String(s.trades)],
  ]);
  cards("#metrics", [
    ["Total return", m.total_return === null ? null : fmtPct(m.total_return * 100)],
    ["Max drawdown", fmtPct(m.max_drawdown * 100)],
    ["Sharpe", fixed(m.sharpe, 2)],
    ["Sortino", fixed(m.sortino, 2)],
    ["Win rate", m.win_rate === null ? null : fmtPct(m.win_rate * 100)],
    ["Profit factor", m.profit_factor === null ? null : String(m.profit_factor)],
    ["Exposure", m.exposure === null ? null : fmtPct(m.exposure * 100)],
    ["Closed trades", String(m.n_trades)],
  ]);
  const LW = window.LightweightCharts;
  const chart = LW.createChart($("#equity-chart"), {
    autoSize: true, timeScale: { timeVisible: true },
    layout: { background: { color: "#ffffff" }, textColor: "#16202c", attributionLogo: false },
  });
  const series = chart.addSeries(LW.LineSeries, { color: "#0b5cad", lineWidth: 2,
    priceFormat: { type: "price", precision: 6, minMove: 0.000001 } });
  const curve = result.equity_curve;
  const points = [];
  curve.ts.forEach((t, i) => {
    const time = Math.floor(Date.parse(t) / 1000);
    if (!points.length || points[points.length - 1].time < time) points.push({ time, value: curve.equity[i] });
  });
  series.setData(points);
  chart.timeScale().fitContent();
  const body = $("#trades tbody");
  const several = Boolean(s.symbols && s.symbols.length > 1);
  $("#trades-pair").hidden = !several;
  body.replaceChildren(...(result.trades.length ? result.trades.map((t) => el("tr", {},
    several ? el("td", {}, t.symbol) : null, el("td", {}, t.entry_time), el("td", {}, t.exit_time), el("td", { class: "num" }, t.entry_price),
    el("td", { class: "num" }, t.exit_price),
    el("td", { class: `num ${Number(t.pnl) >= 0 ? "up" : "down"}` }, t.pnl),
    el("td", { class: "num" }, t.profit_ratio), el("td", {}, t.exit_reason)))
    : [el("tr", {}, el("td", { colspan: several ? 8 : 7 }, "No trade in this range."))]));
  reportTables(result.report);
  $("#skipped").replaceChildren(...(result.skipped_entries.length
    ? result.skipped_entries.map((s) => el("li", {}, `${s.time}: ${s.reason}`))
    : [el("li", {}, "None.")]));
  $("#report").hidden = false;
}

const TABLES = [["symbol", "By pair"], ["entry_tag", "By entry tag"], ["exit_reason", "By exit reason"],
  ["month", "By month"]];

// The report's tables (docs/backtesting.md): one row per pair (several pairs only), entry
// tag, exit reason and month.
function reportTables(rep) {
  const box = $("#report-tables");
  if (!rep || !rep.tables) return;
  const shown = TABLES.filter(([key]) => rep.tables[key] && (key !== "symbol" || rep.tables[key].length > 1));
  box.replaceChildren(...shown.flatMap(([key, title]) => [
    el("h2", {}, title),
    el("div", { class: "table-wrap" }, el("table", { class: "data", id: `table-${key}` },
      el("caption", { class: "visually-hidden" }, `Trades of the backtest ${title.toLowerCase()}`),
      el("thead", {}, el("tr", {}, ...["", "Trades", "Wins", "Losses", "Win rate", "Profit"]
        .map((h, i) => el("th", { scope: "col", class: i > 0 ? "num" : null }, h)))),
      el("tbody", {}, ...(rep.tables[key].length ? rep.tables[key].map((r) => el("tr", {},
        el("td", {}, r.key), el("td", { class: "num" }, String(r.trades)),
        el("td", { class: "num" }, String(r.wins)), el("td", { class: "num" }, String(r.losses)),
        el("td", { class: "num" }, fmtPct(r.win_rate * 100)),
        el("td", { class: `num ${Number(r.profit_abs) >= 0 ? "up" : "down"}` }, r.profit_abs)))
        : [el("tr", {}, el("td", { colspan: 6 }, "No trade."))])))),
  ]));
}

followJob(`/api/backtests/${id}`, id, "backtest", (job) => report(job.result));
