// Tiny DOM helpers: build elements without innerHTML (no injection of catalog text).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = !!v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export function select(options, value, attrs = {}) {
  return h("select", attrs, options.map((o) => {
    // a bare value is shown as words: "missile_operating_base" reads "missile operating base"
    const [v, label] = Array.isArray(o) ? o : [o, String(o).replaceAll("_", " ")];
    const opt = h("option", { value: v }, label);
    if (v === value) opt.selected = true;
    return opt;
  }));
}

let toastTimer = null;
export function toast(message, isError = false) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = "show" + (isError ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (el.className = ""), isError ? 5000 : 2500);
}

export const fmtDate = (iso) => (iso ? iso.slice(0, 10) : "");

// A measured value with its one-sigma error, as sitewatch.analysis._quantity.value_text writes
// it: to the error's two significant digits ("18.29 ± 0.91 m", "5,581 ± 315 m³"); without an
// error, to four significant digits and saying so. Units stored as m2/m3 print as m²/m³.
const fixed = (v, d) => v.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const UNIT_TEXT = { m2: "m²", m3: "m³", km2: "km²", km3: "km³" };
export const unitText = (unit) => UNIT_TEXT[unit] ?? unit ?? "";
export function valueText(value, unc, unit) {
  if (unc != null && unc > 0 && Number.isFinite(unc)) {
    const d = Math.max(0, 1 - Math.floor(Math.log10(unc)));
    return `${fixed(value, d)} ± ${fixed(unc, d)} ${unitText(unit)}`.trim();
  }
  const shown = value === 0 || !Number.isFinite(value)
    ? String(value)
    : fixed(value, Math.max(0, 3 - Math.floor(Math.log10(Math.abs(value)))));
  return `${shown} ${unitText(unit)} (no uncertainty recorded)`.trim();
}
