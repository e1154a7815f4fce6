// Small DOM helpers shared by the views. Elements are built with the DOM API, never from
// HTML strings, so a job's payload or error text is always shown as text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// The attributes the views set, and no others: a name that reached here from data (an
// `onclick`, a `style`, a `srcdoc`) is refused, not set. Links go within the page only.
const ATTRIBUTES = new Set([
  "class", "id", "type", "name", "value", "for", "scope", "role", "hidden", "title", "size",
  "placeholder", "pattern", "min", "max", "step", "datetime", "colspan", "rowspan", "disabled",
  "required", "selected", "autocomplete", "spellcheck", "tabindex", "open", "lang", "href", "method",
  "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "points", "d", "fill",
  "stroke", "stroke-width", "stroke-dasharray", "text-anchor", "dominant-baseline", "transform",
  "viewBox", "preserveAspectRatio", "opacity", "font-size",
]);
const PATTERNED = /^(aria|data)-[a-z-]+$/;

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) {
      if (typeof v !== "function") throw new Error(`refused attribute ${k}: not a listener`);
      el.addEventListener(k.slice(2), v);
      continue;
    }
    if (!ATTRIBUTES.has(k) && !PATTERNED.test(k)) throw new Error(`refused attribute ${k}`);
    const text = v === true ? "" : String(v);
    if (k === "href" && !/^[#/]/.test(text)) throw new Error(`refused link ${text}`);
    el.setAttribute(k, text);
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function stateBadge(state, extra = "") {
  return h("span", { class: `badge state-${state}` }, state + extra);
}

export function progressBar(value, label) {
  return h("progress", { max: 100, value: value ?? 0, "aria-label": label }, `${value ?? 0}%`);
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const v = Math.max(0, seconds);
  if (v < 1) return `${Math.round(v * 1000)} ms`;
  if (v < 90) return `${v.toFixed(v < 10 ? 1 : 0)} s`;
  if (v < 5400) return `${Math.round(v / 60)} min`;
  if (v < 172800) return `${(v / 3600).toFixed(1)} h`;
  return `${Math.round(v / 86400)} days`;
}

export function ago(iso) {
  if (!iso) return "—";
  return `${duration((Date.now() - new Date(iso).getTime()) / 1000)} ago`;
}

export function timeEl(iso, text) {
  return h("time", { datetime: iso || "", title: iso ? when(iso) : "" }, text ?? when(iso));
}

// A message block: "error" for what failed (the API's own message, which says what to do),
// "empty" for a list with nothing in it, "loading" while waiting.
export function message(kind, text) {
  return h("p", { class: `message ${kind}`, role: kind === "error" ? "alert" : null }, text);
}

export function errorText(err) {
  return err && err.message ? err.message : String(err);
}

let noticeTimer = null;
export function notice(text, kind = "info") {
  const el = document.getElementById("notice");
  el.className = `notice ${kind}`;
  el.textContent = text;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { el.textContent = ""; el.className = "notice"; }, 8000);
}

// A modal confirmation; resolves true when the person confirms.
export function confirmDialog(text, okLabel) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

// Runs an action from a button: disabled while it runs, the API's message shown on failure.
export async function act(button, action) {
  button.disabled = true;
  try {
    return await action();
  } catch (err) {
    notice(errorText(err), "error");
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function table(caption, headers, rows, { empty } = {}) {
  if (!rows.length) return message("empty", empty || "Nothing here.");
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

export const TERMINAL = ["succeeded", "dead", "cancelled"];
