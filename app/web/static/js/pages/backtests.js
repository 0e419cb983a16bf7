import { api, boot, el, $, show, showFormError, clearFormError, errorText } from "../app.js";
import { renderParams, collectParams } from "../params.js";

boot();
const form = $("#backtest-form");
const strategySelect = $("#strategy");
let strategies = [];

function showParams() {
  const s = strategies.find((x) => x.name === strategySelect.value);
  show($("#strategy-description"), s ? s.description : "");
  renderParams($("#params"), s);
}

async function list() {
  const page = await api("/api/backtests?limit=50");
  const body = $("#backtests tbody");
  if (!page.items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6 }, "No backtest yet.")));
    return;
  }
  body.replaceChildren(...page.items.map((b) => el("tr", {},
    el("td", {}, el("a", { href: `/backtests/${b.id}` }, `#${b.id}`)),
    el("td", {}, el("span", { class: `badge ${b.state}` }, b.state)),
    el("td", {}, b.payload.strategy), el("td", {}, b.payload.symbol),
    el("td", {}, b.payload.timeframe), el("td", {}, b.created_at))));
}

async function load() {
  try {
    const [strats, markets] = await Promise.all([api("/api/strategies"), api("/api/markets")]);
    strategies = strats.items;
    strategySelect.replaceChildren(...strategies.map((s) => el("option", { value: s.name }, s.name)));
    $("#symbol").replaceChildren(...markets.items.map((m) => el("option", { value: m.symbol }, m.symbol)));
    showParams();
    await list();
    document.body.dataset.loaded = "true";
  } catch (err) {
    show(form.querySelector(".form-error"), errorText(err));
  }
}

strategySelect.addEventListener("change", showParams);
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(form);
  const body = {
    strategy: strategySelect.value,
    strategy_params: collectParams($("#params")),
    symbol: $("#symbol").value,
    timeframe: $("#timeframe").value,
    capital: $("#capital").value.trim(),
    sizing: { mode: "percent", percent: $("#sizing-percent").value.trim() },
  };
  if ($("#start").value) body.start = `${$("#start").value}T00:00:00Z`;
  if ($("#end").value) body.end = `${$("#end").value}T00:00:00Z`;
  try {
    const job = await api("/api/backtests", { method: "POST", body });
    location.assign(`/backtests/${job.id}`);
  } catch (err) {
    showFormError(form, err);
  }
});
load();
