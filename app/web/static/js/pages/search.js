import { api, boot, el, $, show, errorText, fmtPct, confirmDialog } from "../app.js";
import { cards, fixed, followJob } from "../jobs.js";

boot();
const id = document.body.dataset.searchId;
const problem = $(".form-error");

const pct = (v) => (v === null || v === undefined ? "–" : fmtPct(v * 100));
const params = (p) => (p ? Object.entries(p).map(([k, v]) => `${k} ${v}`).join(", ") : "–");

function result(job) {
  const r = job.result;
  const wf = r.walk_forward;
  const lastFold = wf ? [...r.folds].reverse().find((f) => f.params) : null;
  const best = wf ? (lastFold ? { params: lastFold.params, value: lastFold.in_sample_value } : null) : r.best;
  const pairs = job.payload.backtest.symbols || [job.payload.backtest.symbol];
  cards("#best", [
    [pairs.length > 1 ? "Pairs" : "Symbol", pairs.join(", ")],
    ...(pairs.length > 1 ? [["Max open trades", String(job.payload.backtest.max_open_trades)]] : []),
    ["Objective", r.objective], ["Trials run", r.trials_done], ["Stopped by", r.stopped_by],
    ["Parameters", best ? params(best.params) : null],
    ["Objective value", best ? fixed(best.value) : null],
  ]);
  $("#make-bot").hidden = !best;
  // a bot trades one pair: which of the searched ones
  $("#bot-pair-box").hidden = !best || pairs.length < 2;
  $("#bot-pair").replaceChildren(...pairs.map((p) => el("option", { value: p }, p)));
  if (wf) {
    $("#walk-forward").hidden = false;
    // the verdict is a whole sentence ("holds out of sample: …" / "falls apart out of sample: …")
    show($("#verdict"), wf.verdict.charAt(0).toUpperCase() + wf.verdict.slice(1));
    $("#verdict").className = wf.holds ? "verdict holds" : "verdict fails";
    $("#folds tbody").replaceChildren(...r.folds.map((f) => el("tr", {},
      el("td", {}, String(f.fold + 1)),
      el("td", {}, `${f.out_of_sample.start} – ${f.out_of_sample.end}`),
      el("td", {}, params(f.params)), el("td", { class: "num" }, pct(f.in_sample_return)),
      el("td", { class: "num" }, pct(f.out_of_sample_return)),
      el("td", { class: "num" }, fixed(f.efficiency, 2) ?? "–"))));
  }
  if (r.trials && r.trials.length) {
    $("#trials-box").hidden = false;
    const ranked = [...r.trials].sort((a, b) => (b.value ?? -Infinity) - (a.value ?? -Infinity));
    $("#trials tbody").replaceChildren(...ranked.slice(0, 50).map((t) => el("tr", {},
      el("td", {}, String(t.number)), el("td", {}, params(t.params)),
      el("td", { class: "num" }, t.value === null ? t.state : fixed(t.value)))));
  }
  $("#result").hidden = false;
}

$("#make-bot").addEventListener("click", async () => {
  if (!(await confirmDialog("Create a paper bot (not started) with the parameters this search found?",
    { confirm: "Create the bot" }))) return;
  try {
    const body = $("#bot-pair-box").hidden ? {} : { symbol: $("#bot-pair").value };
    const bot = await api(`/api/searches/${id}/bot`, { method: "POST", body });
    location.assign(`/bots/${bot.id}`);
  } catch (err) {
    show(problem, errorText(err));
  }
});

followJob(`/api/searches/${id}`, id, "search", result);
