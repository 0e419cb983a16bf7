import { api, boot, $, show, showFormError, clearFormError, errorText } from "../app.js";
import { jobBody, listJobs, loadChoices } from "../jobs.js";
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

async function load() {
  try {
    strategies = await loadChoices(strategySelect, $("#symbol"));
    showParams();
    await listJobs("/api/backtests", "#backtests tbody", "/backtests", "backtest",
      (b) => [b.payload.strategy, (b.payload.symbols || [b.payload.symbol]).join(", "), b.payload.timeframe,
        b.created_at]);
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
    ...jobBody(),
    strategy_params: collectParams($("#params")),
    sizing: { mode: "percent", percent: $("#sizing-percent").value.trim() },
  };
  try {
    const job = await api("/api/backtests", { method: "POST", body });
    location.assign(`/backtests/${job.id}`);
  } catch (err) {
    showFormError(form, err);
  }
});
load();
