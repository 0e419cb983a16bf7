// A strategy's parameters as form fields, generated from its JSON schema (shared by the
// bot form and the backtest form).
import { el } from "./app.js";

export function renderParams(box, strategy, values = {}) {
  box.replaceChildren();
  if (!strategy) return;
  for (const [key, prop] of Object.entries(strategy.params_schema.properties || {})) {
    const id = `param-${key}`;
    const value = values[key] ?? strategy.default_params[key] ?? prop.default ?? "";
    box.append(el("div", { class: "field" },
      el("label", { for: id }, prop.title || key),
      el("input", {
        id, "data-param": key, type: "number",
        step: prop.type === "integer" ? "1" : "any",
        min: prop.minimum ?? null, max: prop.maximum ?? null, value: String(value),
        "aria-describedby": `${id}-hint`,
      }),
      el("p", { class: "hint", id: `${id}-hint` }, prop.description || ""),
      el("p", { class: "field-error", "data-error-for": `strategy_params.${key}`, hidden: true })));
  }
}

export function numberOrText(raw) {
  const n = Number(raw);
  return String(raw).trim() !== "" && !Number.isNaN(n) ? n : raw;
}

export function collectParams(box) {
  const params = {};
  box.querySelectorAll("[data-param]").forEach((i) => {
    if (i.value !== "") params[i.dataset.param] = numberOrText(i.value);
  });
  return params;
}
