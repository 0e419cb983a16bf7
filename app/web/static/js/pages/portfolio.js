import { api, boot, el, $, show, errorText } from "../app.js";

boot();

function table(target, items, cells, empty) {
  const cols = $(`${target} thead tr`).children.length;
  $(`${target} tbody`).replaceChildren(...(items.length
    ? items.map((i) => el("tr", {}, ...cells(i).map((c, n) => el("td", { class: n > 1 ? "num" : null }, c ?? "–"))))
    : [el("tr", {}, el("td", { colspan: cols }, empty))]));
}

async function load() {
  try {
    const p = await api("/api/portfolio");
    $("#totals").replaceChildren(
      el("div", {}, el("dt", {}, "Total"), el("dd", {}, `${p.total} ${p.base_currency}`)),
      el("div", {}, el("dt", {}, "As of"), el("dd", {}, p.as_of)),
      el("div", {}, el("dt", {}, "Complete"), el("dd", {}, p.complete ? "yes" : "no: some assets are unpriced")));
    table("#assets", [...p.assets], (a) => [a.asset, a.exchange, a.amount, a.rate, a.value,
      a.priced ? (a.path || []).join(" → ") : `unpriced: ${a.reason}`], "You hold nothing yet.");
    table("#bots", p.bots, (b) => [el("a", { href: `/bots/${b.bot_id}` }, b.name), b.symbol,
      b.value === null ? null : `${b.value} ${p.base_currency}`], "No bots.");
    $("#assumptions").replaceChildren(...p.assumptions.map((a) => el("li", {}, a)));
    document.body.dataset.loaded = "true";
  } catch (err) {
    show($(".form-error"), errorText(err));
  }
}
load();
