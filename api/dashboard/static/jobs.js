// Jobs: every job in every state, counted per state, filtered by kind, queue, owner and
// creation time, searched by id, idempotency key or payload text; pages keyset-paginated;
// a selection cancelled, retried or (admins) deleted in bulk after a confirmation. The
// filters live in the address (#/jobs?state=dead&kind=…), so a view can be reloaded or sent.
// Counts and the first page are re-read every few seconds while nothing else is loading.

import { get, jobsPage, post, query } from "./api.js";
import {
  act, ago, clear, confirmDialog, errorText, h, message, notice, stateBadge, timeEl,
} from "./ui.js";

const REFRESH_MS = 5000;
const SEARCH_CALLS = 50;  // a search reads 20,000 ids a call (by kind or queue 100,000): a click reads 1,000,000 or more
const STATES = [
  ["waiting", "Waiting"], ["queued", "Queued"], ["scheduled", "Scheduled"], ["retrying", "Retrying"],
  ["running", "Running"], ["succeeded", "Succeeded"], ["dead", "Dead"], ["cancelled", "Cancelled"],
];
const ACTIONS = {
  cancel: { label: "Cancel", verb: "cancelled", ask: (n) => `Cancel ${n} selected job${n === 1 ? "" : "s"}? Queued ones are cancelled now; running ones are asked to stop.` },
  retry: { label: "Retry", verb: "queued again", ask: (n) => `Retry ${n} selected job${n === 1 ? "" : "s"}? Each dead or cancelled one goes back to its queue with a fresh budget of attempts.` },
  delete: { label: "Delete", verb: "deleted", ask: (n) => `Delete ${n} selected job${n === 1 ? "" : "s"} for good? Only finished jobs are deleted, with their events; the deletion is recorded in the audit log under your name.` },
};

function isoOrNull(local) {
  return local ? new Date(local).toISOString() : null;  // datetime-local is the browser's zone
}

function localOf(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

export async function render(root, { me, params, signal }) {
  const address = new URLSearchParams((params[0] || "").replace(/^\?/, ""));
  let kinds = [];
  try { kinds = (await get("/v1/kinds")).map((k) => k.kind); } catch { /* free text still works */ }
  if (signal.aborted) return;

  const chosenKind = address.get("kind") || "";
  const kind = h("select", { id: "j-kind", name: "kind" },
    h("option", { value: "" }, "any kind"),
    [...new Set([...kinds, chosenKind].filter(Boolean))].map((k) => h("option", { value: k, selected: k === chosenKind }, k)));
  const queue = h("input", { id: "j-queue", name: "queue", type: "text", placeholder: "any queue", pattern: "[A-Za-z0-9_.:\\-]+", value: address.get("queue") || "" });
  const owner = h("input", { id: "j-owner", name: "owner", type: "text", placeholder: "anyone", value: address.get("owner") || "" });
  const after = h("input", { id: "j-after", name: "after", type: "datetime-local", value: localOf(address.get("created_after")) });
  const before = h("input", { id: "j-before", name: "before", type: "datetime-local", value: localOf(address.get("created_before")) });
  const search = h("input", { id: "j-search", name: "q", type: "search", placeholder: "#id, idempotency key or payload text", size: 30, value: address.get("q") || "" });
  const size = h("select", { id: "j-size", name: "limit" },
    [50, 100, 500].map((n) => h("option", { value: n, selected: String(n) === (address.get("limit") || "50") }, String(n))));
  const form = h("form", { class: "filters card", "aria-label": "Filter jobs" },
    field("Search", search), field("Kind", kind), field("Queue", queue),
    me.is_admin ? field("Owner", owner) : null,
    field("Created after", after), field("Created before", before), field("Rows", size),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));

  let state = address.get("state") || "";
  const tabs = h("div", { class: "state-tabs", role: "group", "aria-label": "Job states" });
  const updated = h("p", { class: "muted small", "aria-live": "off" });
  const selected = new Set();
  const selectedCount = h("span", { class: "selection-count", "aria-live": "polite" });
  const buttons = Object.entries(ACTIONS)
    .filter(([name]) => name !== "delete" || me.is_admin)
    .map(([name, a]) => {
      const b = h("button", { type: "button", class: name === "delete" ? "danger small" : "secondary small", "data-action": name }, `${a.label} selected`);
      b.addEventListener("click", () => act(b, () => bulk(name)));
      return b;
    });
  const clearSelection = h("button", { type: "button", class: "link-button small" }, "Clear selection");
  clearSelection.addEventListener("click", () => { selected.clear(); syncSelection(); });
  const bar = h("div", { class: "bulk-bar", hidden: true, role: "region", "aria-label": "Selected jobs" },
    selectedCount, buttons, clearSelection);
  const results = h("div", { "aria-live": "polite" });
  const more = h("div", { class: "more-row" });
  clear(root, h("div", { class: "title-row" }, h("h1", {}, "Jobs"), updated), form, tabs, bar, results, more);

  let cursor = null;
  let pages = 0;  // pages shown past the first: a refresh then leaves the list alone
  let busy = false;
  let generation = 0;  // a reload starts a new one: an older request's answer is dropped
  let applied = null;  // the filters as last applied: a refresh never reads half-typed ones
  const shown = new Map();  // id → job of every row drawn, for the "all shown" box

  function filters() {
    return {
      kind: kind.value || null,
      queue: queue.value.trim() || null,
      owner: me.is_admin ? owner.value.trim() || null : null,
      created_after: isoOrNull(after.value),
      created_before: isoOrNull(before.value),
    };
  }

  function snapshot() {
    return { ...filters(), q: search.value.trim() || null, limit: Number(size.value) };
  }

  function windowed(a) {  // a search, or a listing by kind or queue: bounded windows of ids
    return Boolean((a.q && !/^#?\d+$/.test(a.q)) || a.kind || a.queue);
  }

  function remember() {
    const { limit, ...rest } = applied;
    const q = query({ state, ...rest, limit: limit === 50 ? null : limit });
    const hash = `#/jobs${q}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  async function loadCounts() {
    const gen = generation;
    const { q, limit, ...where } = applied;
    const { counts } = await get("/v1/jobs/counts" + query(where));
    if (signal.aborted || gen !== generation) return;
    const total = counts.filter((c) => !["scheduled", "retrying"].includes(c.state));
    const all = total.reduce((n, c) => n + c.count, 0);
    const anyMore = total.some((c) => c.more);
    const tab = (value, label, count, over) => {
      const b = h("button", {
        type: "button", class: "tab", "data-state": value || "all", "aria-pressed": String(state === value),
      }, label, " ", h("span", { class: "count" }, over ? `${count.toLocaleString()}+` : count.toLocaleString()));
      b.addEventListener("click", () => { state = value; reload(); });
      return b;
    };
    tabs.replaceChildren(
      tab("", "All", all, anyMore),
      ...STATES.map(([value, label]) => {
        const c = counts.find((x) => x.state === value) || { count: 0, more: false };
        return tab(value, label, c.count, c.more);
      }));
  }

  function row(j) {
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": `Select job ${j.id}` });
    box.checked = selected.has(j.id);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(j.id); else selected.delete(j.id);
      syncSelection();
    });
    const last = j.errors[j.errors.length - 1];
    const when = j.finished_at ? ["finished ", timeEl(j.finished_at, ago(j.finished_at))]
      : j.started_at ? ["started ", timeEl(j.started_at, ago(j.started_at))]
        : new Date(j.run_at) > new Date() ? ["runs ", timeEl(j.run_at)] : ["due ", timeEl(j.run_at, ago(j.run_at))];
    return h("tr", { "data-job-id": j.id, "data-state": j.state },
      h("td", { class: "pick-cell" }, box),
      h("th", { scope: "row" }, h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)),
      h("td", { class: "mono" }, j.kind), h("td", {}, j.queue),
      h("td", {}, stateBadge(j.state, j.cancel_requested_at && j.state === "running" ? " (cancelling)" : "")),
      h("td", {}, j.owner),
      h("td", { class: "num" }, `${j.attempt} / ${j.max_attempts}`),
      h("td", { class: "nowrap" }, timeEl(j.created_at, ago(j.created_at))),
      h("td", { class: "nowrap" }, when),
      h("td", { class: "error-cell" }, last ? `${last.type}: ${last.message}` : ""));
  }

  const pickAll = h("input", { type: "checkbox", id: "pick-all", "aria-label": "Select every job shown" });
  pickAll.addEventListener("change", () => {
    for (const id of shown.keys()) if (pickAll.checked) selected.add(id); else selected.delete(id);
    syncSelection();
  });

  function syncSelection() {
    for (const box of results.querySelectorAll("tr[data-job-id] input.pick")) {
      box.checked = selected.has(Number(box.closest("tr").dataset.jobId));
    }
    const n = selected.size;
    bar.hidden = n === 0;
    selectedCount.textContent = `${n} selected`;
    pickAll.checked = shown.size > 0 && [...shown.keys()].every((id) => selected.has(id));
  }

  function tableOf(rows) {
    return h("div", { class: "table-wrap" },
      h("table", { class: "jobs" },
        h("caption", { class: "visually-hidden" }, "Jobs"),
        h("thead", {}, h("tr", {},
          h("th", { scope: "col", class: "pick-cell" }, pickAll),
          ["Job", "Kind", "Queue", "State", "Owner", "Attempt", "Created", "When", "Last error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)));
  }

  // One page: a search, or a listing by kind or queue, may take several calls to fill one
  // (each reads a bounded window of ids), at most SEARCH_CALLS a click.
  async function fetchPage(from, calls = SEARCH_CALLS) {
    const { limit, ...where } = applied;
    const page = await jobsPage({ state: state || null, ...where, brief: "true" }, { limit, cursor: from, calls, signal });
    return { ...page, text: windowed(applied) };
  }

  function showMore(next, text) {
    cursor = next;
    more.replaceChildren();
    if (!cursor) return;
    const label = text ? `Look further back (from job #${cursor})` : "Show more";
    const b = h("button", { type: "button", class: "secondary more" }, label);
    b.addEventListener("click", () => act(b, async () => {
      busy = true;
      const gen = generation;
      try {
        const page = await fetchPage(cursor);
        if (signal.aborted || gen !== generation) return;
        pages += 1;
        const tbody = results.querySelector("tbody");
        const rows = page.jobs.filter((j) => !shown.has(j.id)).map((j) => { shown.set(j.id, j); return row(j); });
        if (tbody) tbody.append(...rows); else if (rows.length) clear(results, tableOf(rows));
        syncSelection();
        showMore(page.next, page.text);
      } finally { busy = false; }
    }));
    more.append(b);
  }

  async function loadFirst() {
    const gen = generation;
    const page = await fetchPage(null);
    if (signal.aborted || gen !== generation) return;
    shown.clear();
    page.jobs.forEach((j) => shown.set(j.id, j));
    if (!page.jobs.length) {
      const what = page.text && page.next ? "No match among the newest jobs searched so far." : "No job matches.";
      clear(results, message("empty", `${what} Jobs appear here as soon as they are submitted; widen the filter, pick another state or search further.`));
    } else {
      clear(results, tableOf(page.jobs.map(row)));
    }
    syncSelection();
    showMore(page.next, page.text);
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  async function reload() {
    applied = snapshot();
    generation += 1;
    remember();
    busy = true;
    pages = 0;
    try {
      await Promise.all([loadCounts(), loadFirst()]);
    } catch (err) {
      if (!signal.aborted) clear(results, message("error", errorText(err)));
    } finally { busy = false; }
    for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.dataset.state === (state || "all")));
  }

  async function bulk(action) {
    const ids = [...selected];
    if (!ids.length) return;
    const ok = await confirmDialog(ACTIONS[action].ask(ids.length), `${ACTIONS[action].label} ${ids.length}`);
    if (!ok) return;
    let done = 0;
    const skipped = [];
    try {
      for (let i = 0; i < ids.length; i += 1000) {  // the API takes 1,000 ids a call
        const r = await post("/v1/jobs/bulk", { action, ids: ids.slice(i, i + 1000) });
        done += r.done.length;
        skipped.push(...r.skipped);
      }
    } catch (err) {  // what was done before the failure stays done: say so, then show it
      notice(`${done} job${done === 1 ? "" : "s"} ${ACTIONS[action].verb} before this failed: ${errorText(err)}`, "error");
      selected.clear();
      await reload();
      return;
    }
    selected.clear();
    const why = [...new Set(skipped.map((s) => s.reason))].join("; ");
    notice(`${done} job${done === 1 ? "" : "s"} ${ACTIONS[action].verb}` +
      (skipped.length ? `; ${skipped.length} left as they were (${why}).` : "."), skipped.length && !done ? "error" : "info");
    await reload();
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    selected.clear();
    clear(results, message("loading", "Loading…"));
    reload();
  });

  // A listing by kind or queue may take many calls to fill: a refresh makes one, over the
  // newest ids, and puts what it finds in place (changed rows redrawn, new ones on top).
  async function refreshNewest() {
    const gen = generation;
    const page = await fetchPage(null, 1);
    if (signal.aborted || gen !== generation) return;
    const tbody = results.querySelector("tbody");
    if (!tbody) { if (page.jobs.length) await loadFirst(); return; }
    const top = Math.max(0, ...shown.keys());
    const fresh = [];
    for (const j of page.jobs) {
      const old = tbody.querySelector(`tr[data-job-id="${j.id}"]`);
      if (old) {
        old.replaceWith(row(j));
        shown.set(j.id, j);
      } else if (j.id > top) {
        fresh.push(j);
        shown.set(j.id, j);
      }
    }
    tbody.prepend(...fresh.map(row));
    syncSelection();
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  await reload();
  const timer = setInterval(() => {
    if (busy || document.hidden) return;
    const text = applied.q && !/^#?\d+$/.test(applied.q);
    const first = windowed(applied) ? refreshNewest : loadFirst;
    const work = pages === 0 && !text ? Promise.all([loadCounts(), first()]) : loadCounts();
    busy = true;
    work.catch((err) => notice(errorText(err), "error")).finally(() => { busy = false; });
  }, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}

function field(label, input) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
}
