// Kinds: the catalogue of job kinds, each with its payload's JSON Schema, the default
// timeout and CPU-boundness its live workers publish, how many workers run it, and its
// success rate over the last 24 hours. A kind the caller may submit has a form generated
// from its schema (one input per top-level field), posting to POST /v1/jobs; the server's
// refusal is shown beside the field it names.

import { ApiError, get, post } from "./api.js";
import { clear, duration, errorText, h, json, message } from "./ui.js";

export async function render(root, { me, signal }) {
  const kinds = await get("/v1/kinds");
  if (signal.aborted) return;
  clear(root, h("h1", {}, "Kinds"),
    h("p", { class: "muted" }, me.is_admin
      ? "Every job kind the API accepts. Submit one by hand below: an ingest, a leaderboard refresh, a demo job."
      : "Every job kind the API accepts; the ones you may submit have a form."),
    kinds.length ? kinds.map((k) => card(k)) :
      message("empty", "The API knows no job kinds. Its own are always there: check that this is a Conveyor API."));
}

function card(k) {
  const slug = k.kind.replace(/[^A-Za-z0-9_-]/g, "_");
  const schema = k.payload_schema || {};
  return h("section", { class: "card kind-card", "data-kind": k.kind, "aria-labelledby": `kind-${slug}` },
    h("h2", { id: `kind-${slug}`, class: "mono" }, k.kind),
    schema.description ? h("p", {}, schema.description) : null,
    h("dl", { class: "details" },
      ...pair("Default timeout", k.workers === 0 ? "unknown: no live worker runs it" : k.timeout_s === null ? "none" : duration(k.timeout_s)),
      ...pair("CPU-bound", k.workers === 0 ? "unknown" : k.cpu_bound ? "yes: runs in a worker's process pool" : "no: runs on a worker's event loop"),
      ...pair("Workers running it", h("span", { class: k.workers === 0 ? "warn" : null, "data-workers": k.workers },
        k.workers === 0 ? "none: its jobs wait until a worker that runs it starts" : String(k.workers))),
      ...pair("Last 24 hours", h("span", { class: "success-rate", "data-success-rate": k.success_rate ?? "" }, last24h(k))),
      ...(limits(k) ? pair("Limits", limits(k)) : [])),
    h("details", { class: "schema" }, h("summary", {}, "Payload schema (JSON Schema)"), json(schema)),
    k.may_submit
      ? h("details", { class: "submit" }, h("summary", {}, "Submit a job"), submitForm(k, slug))
      : h("p", { class: "muted submit-refusal" }, `You cannot submit it from here: ${k.submit_refusal}.`));
}

function last24h(k) {
  if (k.finished_24h === null) return "for admins (the figures span every user's jobs)";
  if (k.finished_24h === 0) return "no data: none finished in the last 24 hours";
  const cancelled = k.finished_24h - k.succeeded_24h - k.dead_24h;
  const counts = `${k.succeeded_24h} succeeded, ${k.dead_24h} dead, ${cancelled} cancelled`;
  if (k.success_rate === null) return `no success rate: ${counts}`;
  return `${(k.success_rate * 100).toFixed(k.success_rate === 1 ? 0 : 1)}% succeeded (${counts})`;
}

function limits(k) {
  const parts = [];
  if (k.concurrency !== null) parts.push(`at most ${k.concurrency} at once`);
  if (k.owner_concurrency !== null) parts.push(`at most ${k.owner_concurrency} of one owner's at once`);
  if (k.rate_limit) {
    const per = k.rate_limit.partition ? ` per ${k.rate_limit.partition}` : "";
    parts.push(`${k.rate_limit.allowed} starts per ${duration(k.rate_limit.period_s)}${per}`);
  }
  return parts.join("; ");
}

// -- the submit form ------------------------------------------------------------------------

// A property as a form field can take it: `$ref` looked up, `X | None` read as an optional X
// (keeping the outer title, description and default), anything else as JSON.
function resolve(prop, defs) {
  let p = prop.$ref ? { ...defs[prop.$ref.split("/").pop()], ...without(prop, "$ref") } : prop;
  if (Array.isArray(p.anyOf)) {
    const others = p.anyOf.filter((x) => x.type !== "null");
    const outer = without(p, "anyOf");
    p = others.length === 1 && !others[0].$ref ? { ...others[0], ...outer } : { ...outer, type: "json" };
  }
  return p;
}

function without(obj, key) {
  const copy = { ...obj };
  delete copy[key];
  return copy;
}

function controlOf(p) {
  if (p.const !== undefined || Array.isArray(p.enum)) return "select";
  if (p.type === "boolean") return "checkbox";
  if (p.type === "integer" || p.type === "number") return "number";
  if (p.type === "string") return "text";
  return "json";  // arrays, objects, unions
}

function hintOf(p, control) {
  const parts = [];
  if (p.description) parts.push(p.description);
  if (control === "json") {
    const items = p.items && (p.items.description || (p.items.enum && `one of ${p.items.enum.join(", ")}`));
    parts.push(p.type === "array" ? `a JSON list${items ? ` (each ${items})` : ""}` : "JSON");
  }
  if (p.minimum !== undefined && p.maximum !== undefined) parts.push(`from ${p.minimum} to ${p.maximum}`);
  else if (p.minimum !== undefined) parts.push(`at least ${p.minimum}`);
  else if (p.maximum !== undefined) parts.push(`at most ${p.maximum}`);
  if (p.exclusiveMinimum !== undefined) parts.push(`above ${p.exclusiveMinimum}`);
  if (p.type === "integer") parts.push("a whole number");
  if (p.format === "date") parts.push("a date");
  return parts.join("; ");
}

// One input for one top-level property: its element, and `read()` giving the value to send
// ({skip} when left empty: the server's default applies), or an error of its own.
function field(slug, name, prop, required, defs) {
  const p = resolve(prop, defs);
  const control = controlOf(p);
  const id = `f-${slug}-${name}`;
  const hintId = `${id}-hint`, problemId = `${id}-problem`;
  const hint = hintOf(p, control);
  const common = { id, name, "aria-describedby": `${hint ? hintId + " " : ""}${problemId}`, "aria-required": required ? "true" : null };
  const has = p.default !== undefined && p.default !== null;
  let input, read;
  if (control === "select") {
    const values = p.const !== undefined ? [p.const] : p.enum;
    const chosen = has ? values.findIndex((v) => v === p.default) : -1;
    input = h("select", common,
      required && chosen >= 0 ? null : h("option", { value: "" }, has ? "(the default)" : "(none)"),
      values.map((v, i) => h("option", { value: String(i), selected: i === chosen }, String(v))));
    read = () => (input.value === "" ? { skip: true } : { value: values[Number(input.value)] });
  } else if (control === "checkbox") {
    input = h("input", { ...common, type: "checkbox" });
    input.checked = p.default === true;
    read = () => ({ value: input.checked });
  } else if (control === "number") {
    input = h("input", { ...common, type: "number", step: "any", value: has ? p.default : null, placeholder: has ? null : "empty: none" });
    read = () => {
      const text = input.value.trim();
      return text === "" ? { skip: true } : { value: Number(text) };
    };
  } else if (control === "text") {
    input = h("input", { ...common, type: p.format === "date" ? "date" : "text", value: has ? p.default : null, spellcheck: "false" });
    read = () => (input.value.trim() === "" ? { skip: true } : { value: input.value.trim() });
  } else {
    input = h("textarea", { ...common, class: "json-input", spellcheck: "false", placeholder: p.type === "array" ? "[…]" : "{…}" });
    input.value = has ? JSON.stringify(p.default) : "";
    read = () => {
      const text = input.value.trim();
      if (text === "") return { skip: true };
      try {
        return { value: JSON.parse(text) };
      } catch (err) {
        return { error: `this is not JSON (${err.message})` };
      }
    };
  }
  const problem = h("p", { id: problemId, class: "inline-error", role: "alert" });
  const label = h("label", { for: id, class: "mono" }, name, required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null);
  const el = control === "checkbox"
    ? h("div", { class: "field check-field" }, h("div", { class: "field check" }, input, label), hint ? h("p", { id: hintId, class: "hint" }, hint) : null, problem)
    : h("div", { class: "field" }, label, input, hint ? h("p", { id: hintId, class: "hint" }, hint) : null, problem);
  return { name, el, input, read, show: (text) => showProblem(input, problem, text), clear: () => showProblem(input, problem, "") };
}

function showProblem(input, problem, text) {
  problem.textContent = text;
  if (text) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
}

function option(slug, name, label, attrs, hint) {
  const id = `f-${slug}-job-${name}`;
  const input = h("input", { id, name, "aria-describedby": `${id}-hint ${id}-problem`, ...attrs });
  const problem = h("p", { id: `${id}-problem`, class: "inline-error", role: "alert" });
  const el = h("div", { class: "field" }, h("label", { for: id }, label), input, h("p", { id: `${id}-hint`, class: "hint" }, hint), problem);
  return { name, el, input, show: (text) => showProblem(input, problem, text), clear: () => showProblem(input, problem, "") };
}

function submitForm(k, slug) {
  const schema = k.payload_schema || {};
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {})
    .map(([name, prop]) => field(slug, name, prop, required.has(name), schema.$defs || {}));
  const queue = option(slug, "queue", "Queue", { type: "text", placeholder: "default", spellcheck: "false" }, "optional; empty: default");
  const priority = option(slug, "priority", "Priority", { type: "number", step: "any", placeholder: "0" }, "optional; higher starts first");
  const problem = h("p", { class: "message error", role: "alert", hidden: true });
  const result = h("p", { class: "submit-result", role: "status" });
  const button = h("button", { type: "submit" }, `Submit ${k.kind}`);
  const form = h("form", { class: "submit-form", "aria-label": `Submit a ${k.kind} job` },
    fields.length ? h("fieldset", {}, h("legend", {}, "Payload"), fields.map((f) => f.el))
      : h("p", { class: "muted" }, "This kind takes no payload."),
    h("fieldset", {}, h("legend", {}, "Job"), queue.el, priority.el),
    required.size ? h("p", { class: "hint" }, "* required") : null,
    problem, h("div", { class: "actions" }, button), result);

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const f of [...fields, queue, priority]) f.clear();
    problem.hidden = true;
    result.replaceChildren();
    const payload = {};
    let first = null;
    for (const f of fields) {
      const r = f.read();
      if (r.error) {
        f.show(r.error);
        first = first || f;
      } else if (!r.skip) {
        payload[f.name] = r.value;
      }
    }
    if (first) return first.input.focus();
    const body = { kind: k.kind, payload };
    if (queue.input.value.trim()) body.queue = queue.input.value.trim();
    if (priority.input.value.trim()) body.priority = Number(priority.input.value.trim());
    button.disabled = true;
    try {
      const job = await post("/v1/jobs", body);
      result.dataset.jobId = job.id;
      result.append(`Job #${job.id} is ${job.state}. `, h("a", { href: `#/jobs/${job.id}` }, `Open job #${job.id}`));
    } catch (err) {
      const placed = place(err, fields, [queue, priority]);
      if (placed.first) placed.first.input.focus();
      if (!placed.all) {
        problem.textContent = errorText(err);
        problem.hidden = false;
      }
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

// The server's refusal beside the fields it names: `details` of a 422 (`{field, problem}`
// each; a payload's fields for `invalid_payload`, the body's otherwise), or a message that
// starts with a field's name ("priority: …"). `all` when every part found its field.
function place(err, fields, options) {
  if (!(err instanceof ApiError)) return { all: false, first: null };
  const inPayload = err.code === "invalid_payload";
  const targets = new Map((inPayload ? fields : options).map((f) => [f.name, f]));
  const found = (path) => targets.get(String(path || "").split(".")[0]);
  let parts = Array.isArray(err.details) ? err.details.map((d) => [d.field, d.problem]) : [];
  if (!parts.length) {
    const named = /^([a-z_]+): (.+)$/s.exec(err.message || "");
    if (named) parts = [[named[1], named[2]]];
  }
  let first = null, all = parts.length > 0;
  for (const [path, text] of parts) {
    const f = found(path);
    if (!f) { all = false; continue; }
    const rest = String(path).split(".").slice(1).join(".");
    f.show(rest ? `${rest}: ${text}` : text);
    first = first || f;
  }
  return { all, first };
}

function pair(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}
