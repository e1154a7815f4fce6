// Dead letters: jobs that used up their attempts, filtered by kind, queue and when they
// finished; retry one, or (admins) every job the filter matches after confirming the count.

import { get, jobsPage, post } from "./api.js";
import {
  act, clear, confirmDialog, errorText, h, message, notice, stateBadge, table, timeEl,
} from "./ui.js";

function isoOrNull(local) {
  return local ? new Date(local).toISOString() : null;  // datetime-local is the browser's zone
}

export async function render(root, { me, signal }) {
  let kinds = [];
  try { kinds = (await get("/v1/kinds")).map((k) => k.kind); } catch { /* free text still works */ }
  if (signal.aborted) return;

  const kind = h("select", { id: "f-kind", name: "kind" },
    h("option", { value: "" }, "any kind"), kinds.map((k) => h("option", { value: k }, k)));
  const queue = h("input", { id: "f-queue", name: "queue", type: "text", placeholder: "any queue", pattern: "[A-Za-z0-9_.:\\-]+" });
  const after = h("input", { id: "f-after", name: "after", type: "datetime-local" });
  const before = h("input", { id: "f-before", name: "before", type: "datetime-local" });
  const cancelled = h("input", { id: "f-cancelled", name: "cancelled", type: "checkbox" });
  const form = h("form", { class: "filters card", "aria-label": "Filter dead jobs" },
    field("Kind", kind), field("Queue", queue), field("Finished after", after), field("Finished before", before),
    h("div", { class: "field check" }, cancelled, h("label", { for: "f-cancelled" }, "include cancelled")),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Apply")));
  const retryAll = h("button", { type: "button", class: "secondary", hidden: !me.is_admin }, "Retry all matching…");
  const results = h("div", { "aria-live": "polite" });
  clear(root, h("div", { class: "title-row" }, h("h1", {}, "Dead letters"), retryAll), form, results);

  let cursor = null;

  function filter() {
    return {
      states: cancelled.checked ? ["dead", "cancelled"] : ["dead"],
      kind: kind.value || null,
      queue: queue.value.trim() || null,
      finished_after: isoOrNull(after.value),
      finished_before: isoOrNull(before.value),
    };
  }

  function row(j) {
    const last = j.errors[j.errors.length - 1];
    const retry = h("button", { type: "button", class: "small", "aria-label": `Retry job ${j.id}` }, "Retry");
    retry.addEventListener("click", () => act(retry, async () => {
      await post(`/v1/jobs/${j.id}/retry`);
      notice(`Job #${j.id} is queued again.`);
      tr.remove();
    }));
    const tr = h("tr", { "data-job-id": j.id },
      h("th", { scope: "row" }, h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)),
      h("td", { class: "mono" }, j.kind), h("td", {}, j.queue), h("td", {}, stateBadge(j.state)),
      h("td", {}, j.owner), h("td", {}, timeEl(j.finished_at)),
      h("td", { class: "error-cell" }, last ? `${last.type}: ${last.message}` : "—"),
      h("td", {}, retry));
    return tr;
  }

  async function load(more = false) {
    const f = filter();
    const page = await jobsPage({
      state: f.states, kind: f.kind, queue: f.queue, finished_after: f.finished_after,
      finished_before: f.finished_before, brief: "true",
    }, { limit: 50, cursor: more ? cursor : null, signal });
    if (signal.aborted) return;
    cursor = page.next;
    const rows = page.jobs.map(row);
    if (more) {
      results.querySelector("tbody").append(...rows);
    } else {
      clear(results, table("Dead jobs", ["Job", "Kind", "Queue", "State", "Owner", "Finished", "Last error", ""], rows,
        { empty: "No dead job matches. Jobs land here after their last attempt fails; widen the filter to see more." }));
    }
    results.querySelector(".more")?.remove();
    if (cursor) {
      const b = h("button", { type: "button", class: "secondary more" }, "Show more");
      b.addEventListener("click", () => act(b, () => load(true)));
      results.append(b);
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!form.reportValidity()) return;
    clear(results, message("loading", "Loading…"));
    load().catch((err) => clear(results, message("error", errorText(err))));
  });

  retryAll.addEventListener("click", () => act(retryAll, async () => {
    const f = filter();
    const { matching } = await post("/v1/jobs/retry/count", { filter: f });
    if (matching === 0) {
      notice("No job matches this filter, so there is nothing to retry.");
      return;
    }
    const ok = await confirmDialog(
      `Retry ${matching} job${matching === 1 ? "" : "s"} matching this filter? Each goes back to its queue with a fresh budget of attempts.`,
      `Retry ${matching}`);
    if (!ok) return;
    const r = await post("/v1/jobs/retry", { filter: f });
    notice(`${r.retried} job${r.retried === 1 ? " is" : "s are"} queued again.`);
    await load();
  }));

  await load().catch((err) => clear(results, message("error", errorText(err))));
}

function field(label, input) {
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input);
}
