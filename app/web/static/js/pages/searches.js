import { api, boot, el, $, show, showFormError, clearFormError, errorText } from "../app.js";
import { jobBody, listJobs, loadChoices } from "../jobs.js";

boot();
const form = $("#search-form");
const strategySelect = $("#strategy");
let strategies = [];

// One low/high pair per numeric parameter, prefilled with the range the strategy declares.
function showRanges() {
  const s = strategies.find((x) => x.name === strategySelect.value);
  const box = $("#ranges");
  box.replaceChildren();
  if (!s) return;
  for (const [key, prop] of Object.entries(s.params_schema.properties || {})) {
    if (prop.type !== "integer" && prop.type !== "number") continue;
    const step = prop.type === "integer" ? "1" : "any";
    const input = (end, value) => el("input", {
      id: `range-${key}-${end}`, type: "number", step, "data-range": key, "data-end": end,
      min: prop.minimum ?? null, max: prop.maximum ?? null, value: value ?? "",
    });
    box.append(el("div", { class: "field" },
      el("label", { for: `range-${key}-low` }, `${prop.title || key} from`),
      input("low", prop.minimum ?? s.default_params[key]),
      el("label", { for: `range-${key}-high` }, "to"),
      input("high", prop.maximum ?? s.default_params[key]),
      el("p", { class: "field-error", "data-error-for": `ranges.${key}`, hidden: true })));
  }
}

function collectRanges() {
  const ranges = {};
  $("#ranges").querySelectorAll("[data-range]").forEach((i) => {
    if (i.value === "") return;
    ranges[i.dataset.range] = { ...(ranges[i.dataset.range] || {}), [i.dataset.end]: Number(i.value) };
  });
  return ranges;
}

async function load() {
  try {
    strategies = await loadChoices(strategySelect, $("#symbol"),
      (s) => Object.keys(s.params_schema.properties || {}).length);
    showRanges();
    await listJobs("/api/searches", "#searches tbody", "/searches", "search",
      (j) => [j.payload.backtest?.strategy, (j.payload.backtest?.symbols || [j.payload.backtest?.symbol]).join(", "),
        j.payload.objective, j.created_at]);
    document.body.dataset.loaded = "true";
  } catch (err) {
    show(form.querySelector(".form-error"), errorText(err));
  }
}

strategySelect.addEventListener("change", showRanges);
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(form);
  const body = {
    ...jobBody(),
    ranges: collectRanges(),
    objective: $("#objective").value,
    trials: Number($("#trials").value),
    timeout_seconds: Number($("#timeout").value),
  };
  const folds = Number($("#folds").value);
  if (folds > 0) body.walk_forward = { folds };
  try {
    const job = await api("/api/searches", { method: "POST", body });
    location.assign(`/searches/${job.id}`);
  } catch (err) {
    showFormError(form, err);
  }
});
load();
