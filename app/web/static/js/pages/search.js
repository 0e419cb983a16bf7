import { api, boot, el, $, on, show, errorText, fmtPct, confirmDialog } from "../app.js";

boot();
const id = document.body.dataset.searchId;
const problem = $(".form-error");
let done = false;

const text = (v) => (v === null || v === undefined ? "–" : String(v));
const pct = (v) => (v === null || v === undefined ? "–" : fmtPct(v * 100));
const params = (p) => (p ? Object.entries(p).map(([k, v]) => `${k} ${v}`).join(", ") : "–");

function cards(target, entries) {
  $(target).replaceChildren(...entries.map(([label, value]) =>
    el("div", {}, el("dt", {}, label), el("dd", {}, text(value)))));
}

function result(job) {
  const r = job.result;
  const wf = r.walk_forward;
  const lastFold = wf ? [...r.folds].reverse().find((f) => f.params) : null;
  const best = wf ? (lastFold ? { params: lastFold.params, value: lastFold.in_sample_value } : null) : r.best;
  cards("#best", [
    ["Objective", r.objective], ["Trials run", r.trials_done], ["Stopped by", r.stopped_by],
    ["Parameters", best ? params(best.params) : null],
    ["Objective value", best && best.value !== null ? Number(best.value).toFixed(4) : null],
  ]);
  $("#make-bot").hidden = !best;
  if (wf) {
    $("#walk-forward").hidden = false;
    show($("#verdict"), `${wf.holds ? "Holds out of sample" : "Does not hold out of sample"}: ${wf.verdict}`);
    $("#folds tbody").replaceChildren(...r.folds.map((f) => el("tr", {},
      el("td", {}, String(f.fold + 1)),
      el("td", {}, `${f.out_of_sample.start} – ${f.out_of_sample.end}`),
      el("td", {}, params(f.params)), el("td", { class: "num" }, pct(f.in_sample_return)),
      el("td", { class: "num" }, pct(f.out_of_sample_return)),
      el("td", { class: "num" }, f.efficiency === null ? "–" : Number(f.efficiency).toFixed(2)))));
  }
  if (r.trials && r.trials.length) {
    $("#trials-box").hidden = false;
    const ranked = [...r.trials].sort((a, b) => (b.value ?? -Infinity) - (a.value ?? -Infinity));
    $("#trials tbody").replaceChildren(...ranked.slice(0, 50).map((t) => el("tr", {},
      el("td", {}, String(t.number)), el("td", {}, params(t.params)),
      el("td", { class: "num" }, t.value === null ? t.state : Number(t.value).toFixed(4)))));
  }
  $("#result").hidden = false;
}

async function poll() {
  if (done) return;
  try {
    const job = await api(`/api/searches/${id}`);
    $("#state").textContent = job.state;
    $("#state").className = `badge ${job.state}`;
    $("#progress").value = job.progress;
    $("#progress-text").textContent = `${Math.round(job.progress * 100)} %`;
    if (job.state === "succeeded" && job.result) {
      done = true;
      $("#progress-box").hidden = true;
      result(job);
      document.body.dataset.loaded = "true";
    } else if (job.state === "failed" || job.state === "cancelled") {
      done = true;
      show(problem, job.error || `the search ${job.state}`);
      document.body.dataset.loaded = "true";
    } else {
      setTimeout(poll, 1000);
    }
  } catch (err) {
    show(problem, errorText(err));
  }
}

$("#make-bot").addEventListener("click", async () => {
  if (!(await confirmDialog("Create a paper bot (not started) with the parameters this search found?",
    { confirm: "Create the bot" }))) return;
  try {
    const bot = await api(`/api/searches/${id}/bot`, { method: "POST", body: {} });
    location.assign(`/bots/${bot.id}`);
  } catch (err) {
    show(problem, errorText(err));
  }
});

on("job_progress", (data) => {
  if (String(data.job_id) !== id || done) return;
  $("#progress").value = data.progress;
  $("#progress-text").textContent = `${Math.round(data.progress * 100)} %`;
});
poll();
