// What the backtest and search pages share: following a background job until it ends, the
// lists of past jobs, the strategy and market choices of their forms, and figure cards.
import { api, el, $, on, show, errorText } from "./app.js";

// A number with `digits` decimals; a tiny negative rounds to "0.0000", never "-0.0000".
export function fixed(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return null;
  const text = Number(value).toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
}

export function cards(target, entries) {
  $(target).replaceChildren(...entries.map(([label, value]) =>
    el("div", {}, el("dt", {}, label), el("dd", {}, value === null || value === undefined ? "–" : String(value)))));
}

function showProgress(progress) {
  $("#progress").value = progress;
  $("#progress-text").textContent = `${Math.round(progress * 100)} %`;
}

// Poll `url` (and listen for its progress events) until the job ends; `onResult(job)`
// draws a succeeded job. The page marks itself loaded once the outcome is on screen.
export function followJob(url, id, noun, onResult) {
  const problem = $(".form-error");
  let done = false;
  const finish = () => {
    done = true;
    document.body.dataset.loaded = "true";
  };
  async function poll() {
    if (done) return;
    try {
      const job = await api(url);
      $("#state").textContent = job.state;
      $("#state").className = `badge ${job.state}`;
      showProgress(job.progress);
      if (job.state === "succeeded" && job.result) {
        $("#progress-box").hidden = true;
        onResult(job);
        finish();
      } else if (job.state === "failed" || job.state === "cancelled") {
        show(problem, job.error || `the ${noun} ${job.state}`);
        finish();
      } else {
        setTimeout(poll, 1000);
      }
    } catch (err) {
      show(problem, errorText(err));
    }
  }
  on("job_progress", (data) => {
    if (String(data.job_id) === String(id) && !done) showProgress(data.progress);
  });
  poll();
}

// The newest jobs of a kind as table rows; `cells(job)` gives a row's cells after its id
// and state.
export async function listJobs(url, tbody, href, noun, cells) {
  const page = await api(`${url}?limit=50`);
  const body = $(tbody);
  if (!page.items.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 2 + cells({ payload: {} }).length }, `No ${noun} yet.`)));
    return;
  }
  body.replaceChildren(...page.items.map((job) => el("tr", {},
    el("td", {}, el("a", { href: `${href}/${job.id}` }, `#${job.id}`)),
    el("td", {}, el("span", { class: `badge ${job.state}` }, job.state)),
    ...cells(job).map((c) => el("td", {}, c ?? "")))));
}

// Fill the strategy and symbol selects of a job form; answers the strategies kept.
export async function loadChoices(strategySelect, symbolSelect, keep = () => true) {
  const [strats, markets] = await Promise.all([api("/api/strategies"), api("/api/markets")]);
  const strategies = strats.items.filter(keep);
  strategySelect.replaceChildren(...strategies.map((s) => el("option", { value: s.name }, s.name)));
  symbolSelect.replaceChildren(...markets.items.map((m) => el("option", { value: m.symbol }, m.symbol)));
  if (symbolSelect.options.length) symbolSelect.options[0].selected = true; // as a single select would
  return strategies;
}

// The shared fields of a job form (templates/web/_job_fields.html) as a request body.
export function jobBody() {
  const pairs = [...$("#symbol").selectedOptions].map((o) => o.value);
  const body = {
    strategy: $("#strategy").value,
    timeframe: $("#timeframe").value,
    capital: $("#capital").value.trim(),
  };
  if (pairs.length > 1) {
    body.symbols = pairs;
    const maxOpen = $("#max-open-trades");
    if (maxOpen && maxOpen.value) body.max_open_trades = Number(maxOpen.value);
  } else body.symbol = $("#symbol").value;
  if ($("#start").value) body.start = `${$("#start").value}T00:00:00Z`;
  if ($("#end").value) body.end = `${$("#end").value}T00:00:00Z`;
  return body;
}
