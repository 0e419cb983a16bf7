import { api, boot, el, $, show, errorText, confirmDialog, notify } from "../app.js";

boot();

const VALIDATE_DELAY_MS = 400;
const templates = new Map();
let current = null; // the open saved document ({id, latest_version}) or null for a new one
let timer = null;
let asked = 0; // answers to older validations are dropped

function range(prop) {
  const lo = prop.minimum ?? prop.exclusiveMinimum;
  const hi = prop.maximum ?? prop.exclusiveMaximum;
  return [lo === undefined ? "" : `from ${lo}`, hi === undefined ? "" : `to ${hi}`].filter(Boolean).join(" ");
}

function paramRange(spec) {
  if (spec.choices) return `one of ${spec.choices.join(", ")}`;
  return [spec.min === undefined ? "" : `from ${spec.min}`,
    spec.max === undefined ? "" : `to ${spec.max}`].filter(Boolean).join(" ");
}

function when(iso) {
  return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

// -- the user's documents -------------------------------------------------------------------

async function loadDocuments() {
  const page = await api("/api/strategies/documents?limit=100");
  $("#documents tbody").replaceChildren(...page.items.map((d) => el("tr", { "data-id": d.id },
    el("td", {}, el("button", { type: "button", class: "link", onclick: () => openDocument(d.id) }, d.name)),
    el("td", { class: "num" }, String(d.latest_version)),
    el("td", {}, when(d.updated_at)))));
  show($("#no-documents"), page.items.length ? "" : "No documents yet: copy a template to start one.");
}

// Every saved version can be opened; saving any of them makes a new latest version.
function showVersions(doc) {
  $("#versions").hidden = !doc;
  if (!doc) return;
  const numbers = Array.from({ length: doc.latest_version }, (_, i) => doc.latest_version - i);
  $("#doc-version").replaceChildren(...numbers.map((n) =>
    el("option", { value: String(n), selected: n === doc.version },
      n === doc.latest_version ? `${n} (latest)` : String(n))));
  $("#version-hint").textContent = doc.version === doc.latest_version ? ""
    : `an older version: saving it makes version ${doc.latest_version + 1}`;
}

async function openVersion() {
  if (!current) return;
  try {
    const doc = await api(`/api/strategies/${current.id}/versions/${$("#doc-version").value}`);
    openEditor(JSON.stringify(doc.document, null, 2), doc, `(${doc.name}, version ${doc.version})`);
  } catch (err) {
    show($(".form-error"), errorText(err));
  }
}

function openEditor(text, doc, label) {
  current = doc;
  showVersions(doc);
  $("#editor").hidden = false;
  $("#doc-text").value = text;
  $("#doc-label").textContent = label;
  $("#delete").hidden = !doc;
  $("#save-status").textContent = "";
  validateNow();
  $("#doc-text").focus();
}

async function openDocument(id) {
  try {
    const doc = await api(`/api/strategies/${id}`);
    openEditor(JSON.stringify(doc.document, null, 2), doc, `(${doc.name}, version ${doc.version})`);
  } catch (err) {
    show($(".form-error"), errorText(err));
  }
}

function copyTemplate() {
  const t = templates.get($("#copy-template").value);
  if (!t) return;
  openEditor(JSON.stringify(t.document, null, 2), null, `(new, from ${t.name})`);
}

// -- checking as one types ------------------------------------------------------------------

function showFault(err) {
  $("#doc-summary").hidden = true;
  $("#doc-error-message").textContent = errorText(err);
  $("#doc-error-paths").replaceChildren(...(err.details || []).map((d) =>
    el("li", {}, el("code", {}, d.path || (d.loc || []).filter((p) => p !== "body").join(".")), " ", d.msg)));
  $("#doc-error").hidden = false;
  $("#doc-text").setAttribute("aria-invalid", "true");
  $("#doc-status").textContent = "The document has faults.";
}

function showSummary(out) {
  $("#doc-error").hidden = true;
  $("#doc-text").removeAttribute("aria-invalid");
  $("#warmup").textContent = `${out.warmup} candles`;
  $("#lookback").textContent = `${out.lookback} candles`;
  $("#doc-timeframe").textContent = out.timeframe || "any";
  $("#doc-params tbody").replaceChildren(...Object.entries(out.parameters).map(([name, spec]) =>
    el("tr", {}, el("td", {}, name), el("td", {}, spec.type), el("td", {}, String(spec.default)),
      el("td", {}, paramRange(spec)))));
  $("#doc-series").replaceChildren(...out.series.map((s) =>
    el("li", {}, el("code", {}, s.name), ` warm-up ${s.warmup}`)));
  $("#doc-summary").hidden = false;
  $("#doc-status").textContent = `${out.name}: valid.`;
}

async function validateNow() {
  clearTimeout(timer);
  const mine = ++asked;
  const text = $("#doc-text").value;
  $("#doc-status").textContent = "Checking…";
  try {
    const out = await api("/api/strategies/validate", { method: "POST", body: { text } });
    if (mine === asked) showSummary(out);
  } catch (err) {
    if (mine === asked) showFault(err);
  }
}

function validateSoon() {
  clearTimeout(timer);
  timer = setTimeout(validateNow, VALIDATE_DELAY_MS);
}

// -- save and delete ------------------------------------------------------------------------

async function save() {
  const body = { text: $("#doc-text").value };
  const button = $("#save");
  button.disabled = true;
  try {
    const doc = current
      ? await api(`/api/strategies/${current.id}`, { method: "PUT", body })
      : await api("/api/strategies", { method: "POST", body });
    current = doc;
    showVersions(doc);
    $("#delete").hidden = false;
    $("#doc-label").textContent = `(${doc.name}, version ${doc.version})`;
    $("#save-status").textContent = `Saved ${doc.name} as version ${doc.version}.`;
    await loadDocuments();
  } catch (err) {
    showFault(err);
  } finally {
    button.disabled = false;
  }
}

async function remove() {
  if (!current) return;
  const ok = await confirmDialog(
    `Delete ${current.name}? It leaves your list; bots and results that ran a version keep it.`,
    { confirm: "Delete", danger: true });
  if (!ok) return;
  try {
    await api(`/api/strategies/${current.id}`, { method: "DELETE" });
    notify(`Deleted ${current.name}.`);
    current = null;
    $("#editor").hidden = true;
    await loadDocuments();
  } catch (err) {
    show($(".form-error"), errorText(err));
  }
}

// -- the templates --------------------------------------------------------------------------

function renderTemplates(items) {
  $("#strategies").replaceChildren(...items.map((s) => el("section", { class: "strategy" },
    el("h3", { id: `s-${s.name}` }, s.name),
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
}

async function load() {
  try {
    const [list] = await Promise.all([api("/api/strategies"), loadDocuments()]);
    for (const s of list.items) if (s.document) templates.set(s.name, s);
    $("#copy-template").replaceChildren(...[...templates.keys()].map((n) => el("option", { value: n }, n)));
    renderTemplates(list.items);
    document.body.dataset.loaded = "true";
  } catch (err) {
    show($(".form-error"), errorText(err));
  }
}

$("#copy").addEventListener("click", copyTemplate);
$("#doc-text").addEventListener("input", () => {
  $("#save-status").textContent = "";
  validateSoon();
});
$("#save").addEventListener("click", save);
$("#doc-version").addEventListener("change", openVersion);
$("#delete").addEventListener("click", remove);
load();
