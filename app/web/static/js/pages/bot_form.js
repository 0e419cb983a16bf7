import { api, boot, el, $, show, showFormError, clearFormError, errorText } from "../app.js";
import { renderParams, collectParams, numberOrText } from "../params.js";

boot();
const form = $("#bot-form");
const botId = document.body.dataset.botId;
const strategySelect = $("#strategy");
const paramsBox = $("#params");
let strategies = [];
let current = null;

function showParams(values = {}) {
  const s = strategies.find((x) => x.name === strategySelect.value);
  show($("#strategy-description"), s ? s.description : "");
  renderParams(paramsBox, s, values);
}

function syncSizing() {
  const mode = $("#sizing-mode").value;
  form.querySelectorAll("[data-mode]").forEach((f) => { f.hidden = f.dataset.mode !== mode; });
}

function collect() {
  const params = collectParams(paramsBox);
  const mode = $("#sizing-mode").value;
  const sizing = { mode };
  if (mode === "percent") sizing.percent = $("#sizing-percent").value;
  if (mode === "fixed") sizing.stake = $("#sizing-stake").value;
  const protections = {};
  form.querySelectorAll("[data-protection]").forEach((i) => {
    const raw = i.value.trim();
    if (raw === "") return;
    protections[i.dataset.protection] = raw.toLowerCase() === "off" ? null : numberOrText(raw);
  });
  return {
    name: $("#name").value.trim(),
    symbol: form.symbol.value,
    timeframe: form.timeframe.value,
    capital: form.capital.value.trim(),
    strategy: strategySelect.value,
    strategy_params: params,
    sizing,
    protections,
    maker_fee: form.maker_fee.value.trim(),
    taker_fee: form.taker_fee.value.trim(),
    slippage_bps: form.slippage_bps.value.trim(),
  };
}

function fill(bot) {
  $("#name").value = bot.name;
  form.symbol.value = bot.symbol;
  form.timeframe.value = bot.timeframe;
  form.capital.value = bot.capital;
  strategySelect.value = bot.strategy;
  showParams(bot.strategy_params);
  const sizing = bot.sizing || {};
  $("#sizing-mode").value = sizing.mode || "kelly";
  if (sizing.percent) $("#sizing-percent").value = sizing.percent;
  if (sizing.stake) $("#sizing-stake").value = sizing.stake;
  form.querySelectorAll("[data-protection]").forEach((i) => {
    const key = i.dataset.protection;
    if (key in (bot.protections || {})) {
      const v = bot.protections[key];
      i.value = v === null ? "off" : String(v);
    }
  });
  form.maker_fee.value = bot.maker_fee;
  form.taker_fee.value = bot.taker_fee;
  form.slippage_bps.value = bot.slippage_bps;
  syncSizing();
}

async function load() {
  try {
    const [strats, markets, bot] = await Promise.all([
      api("/api/strategies"),
      api("/api/markets"),
      botId ? api(`/api/bots/${botId}`) : Promise.resolve(null),
    ]);
    strategies = strats.items;
    strategySelect.replaceChildren(...strategies.map((s) => el("option", { value: s.name }, s.name)));
    form.symbol.replaceChildren(...markets.items.map((m) => el("option", { value: m.symbol }, m.symbol)));
    current = bot;
    if (bot) fill(bot); else { showParams(); syncSizing(); }
    document.body.dataset.loaded = "true";
  } catch (err) {
    show(form.querySelector(".form-error"), errorText(err));
  }
}

strategySelect.addEventListener("change", () => showParams());
$("#sizing-mode").addEventListener("change", syncSizing);
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(form);
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const data = collect();
    const saved = current
      ? await api(`/api/bots/${botId}`, { method: "PATCH", body: data })
      : await api("/api/bots", { method: "POST", body: data });
    location.assign(`/bots/${saved.id}`);
  } catch (err) {
    showFormError(form, err);
    button.disabled = false;
  }
});
load();
