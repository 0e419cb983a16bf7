import { api, boot, el, $, show, errorText } from "../app.js";

boot();

function range(prop) {
  const lo = prop.minimum ?? prop.exclusiveMinimum;
  const hi = prop.maximum ?? prop.exclusiveMaximum;
  return [lo === undefined ? "" : `from ${lo}`, hi === undefined ? "" : `to ${hi}`].filter(Boolean).join(" ");
}

async function load() {
  try {
    const list = await api("/api/strategies");
    $("#strategies").replaceChildren(...list.items.map((s) => el("section", { class: "strategy" },
      el("h2", { id: `s-${s.name}` }, s.name),
      el("p", {}, s.description),
      el("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": `parameters of ${s.name}` }, el("table", { class: "data", "aria-labelledby": `s-${s.name}` },
        el("thead", {}, el("tr", {}, ...["Parameter", "Type", "Range", "Default", "Meaning"].map((h) =>
          el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...Object.entries(s.params_schema.properties || {}).map(([key, prop]) =>
          el("tr", {}, el("td", {}, key), el("td", {}, prop.type), el("td", {}, range(prop)),
            el("td", {}, String(s.default_params[key] ?? prop.default ?? "")),
            el("td", {}, prop.description || "")))))),
      el("p", {}, el("a", { href: "/bots/new" }, `New bot with ${s.name}`), " · ",
        el("a", { href: "/backtests" }, "Backtest it")))));
    document.body.dataset.loaded = "true";
  } catch (err) {
    show($(".form-error"), errorText(err));
  }
}
load();
