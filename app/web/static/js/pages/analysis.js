import { api, boot, el, $, on, show, errorText, showFormError, clearFormError, notify } from "../app.js";

boot();
const pageError = $("#page-error");

function table(target, items, cells, empty) {
  const cols = $(`${target} thead tr`).children.length;
  $(`${target} tbody`).replaceChildren(...(items.length
    ? items.map((i) => el("tr", {}, ...cells(i).map((c) => el("td", {}, c ?? "–"))))
    : [el("tr", {}, el("td", { colspan: cols }, empty))]));
}

async function jobs() {
  const page = await api("/api/jobs?limit=30");
  table("#jobs", page.items, (j) => {
    const cancel = ["queued", "running"].includes(j.state)
      ? el("button", { type: "button", class: "secondary", onclick: () => cancelJob(j.id) }, "Cancel") : "";
    return [`#${j.id}`, j.kind, el("span", { class: `badge ${j.state}` }, j.state),
      `${Math.round(j.progress * 100)} %`, j.created_at, cancel];
  }, "No jobs yet.");
}

async function cancelJob(id) {
  try { await api(`/api/jobs/${id}`, { method: "DELETE" }); jobs(); }
  catch (err) { show(pageError, errorText(err)); }
}

async function results() {
  const page = await api("/api/analysis-results?limit=50");
  table("#results", page.items, (r) => [`#${r.job_id}`, r.ticker, r.timeframe, r.pattern,
    r.error ? `error: ${r.error}` : r.signal, r.score === null ? null : Number(r.score).toFixed(3),
    r.allocation, r.as_of], "No results yet.");
}

async function watchlist() {
  const list = await api("/api/watchlist");
  $("#watchlist").replaceChildren(...(list.items.length ? list.items.map((w) => el("li", {}, `${w.ticker} `,
    el("button", { type: "button", class: "link", "aria-label": `stop watching ${w.ticker}`,
      onclick: async () => {
        try { await api(`/api/watchlist/${w.ticker}`, { method: "DELETE" }); watchlist(); }
        catch (err) { show(pageError, errorText(err)); }
      } }, "remove")))
    : [el("li", {}, "Nothing watched yet.")]));
}

async function load() {
  try {
    const patterns = await api("/api/patterns");
    const names = (patterns.items || patterns.patterns || []).map((p) => p.name || p);
    $("#pattern").append(...names.map((n) => el("option", { value: n }, n)));
    await Promise.all([jobs(), results(), watchlist()]);
    document.body.dataset.loaded = "true";
  } catch (err) {
    show(pageError, errorText(err));
  }
}

function options() {
  const body = { capital: $("#an-capital").value.trim() };
  if ($("#pattern").value) body.pattern = $("#pattern").value;
  return body;
}

const form = $("#analyze-form");
form.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(form);
  const tickers = $("#tickers").value.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    const job = await api("/api/analyze", { method: "POST", body: { ...options(), tickers } });
    notify(`Analysis job #${job.id} queued.`);
    jobs();
  } catch (err) { showFormError(form, err); }
});
$("#analyze-watchlist").addEventListener("click", async () => {
  clearFormError(form);
  try {
    const job = await api("/api/watchlist/analyze", { method: "POST", body: options() });
    notify(`Analysis job #${job.id} queued.`);
    jobs();
  } catch (err) { showFormError(form, err); }
});
const watchForm = $("#watch-form");
watchForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  clearFormError(watchForm);
  try {
    await api("/api/watchlist", { method: "POST", body: { ticker: $("#watch-ticker").value.trim() } });
    $("#watch-ticker").value = "";
    watchlist();
  } catch (err) { showFormError(watchForm, err); }
});
on("job_progress", (data) => {
  jobs().catch(() => {});
  if (data.state === "succeeded") results().catch(() => {});
});
load();
