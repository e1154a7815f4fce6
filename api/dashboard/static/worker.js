// One worker (admins only): where it runs, its version, queues and slots, its heartbeat's
// age, the kinds it runs with their defaults, and the jobs it holds now, each linking to
// the job. Re-read every few seconds until the worker is gone.

import { ApiError, get } from "./api.js";
import { clear, duration, errorText, h, message, notice, progressBar, table, timeEl } from "./ui.js";
import { forAdmins } from "./workers.js";

const REFRESH_MS = 2000;

export async function render(root, { me, params, signal }) {
  if (!me.is_admin) return forAdmins(root, "A worker's page");
  const id = decodeURIComponent(params[0]);
  const updated = h("p", { class: "muted small", "aria-live": "off" });
  const page = h("div", {}, message("loading", "Loading the worker…"));
  clear(root, h("div", { class: "title-row" }, h("h1", {}, "Worker ", h("span", { class: "kind mono" }, id)), updated),
    h("p", {}, h("a", { href: "#/workers" }, "← Every worker")), page);
  let timer = null, gone = false;

  async function refresh() {
    let w;
    try {
      w = await get(`/v1/workers/${encodeURIComponent(id)}`);
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status === 404) {
        gone = true;
        clearInterval(timer);
        updated.textContent = "";
        clear(page, message("empty", "This worker is no longer running: it stopped, or missed its heartbeats and was removed. Jobs it still held go back to their queues when their leases expire."),
          h("p", {}, h("a", { href: "#/workers" }, "See the live workers")));
        return;
      }
      throw err;
    }
    if (signal.aborted) return;
    clear(page,
      h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "worker-details-title" },
          h("h2", { id: "worker-details-title" }, "Details"),
          h("dl", { class: "details" },
            ...pair("Host / pid", `${w.host} / ${w.pid}`),
            ...pair("Version", w.version || "—"),
            ...pair("Queues", w.queues.join(", ")),
            ...pair("Running / slots", h("span", { "data-running": w.running }, `${w.running} / ${w.concurrency}`)),
            ...pair("Last heartbeat", [`${duration(w.heartbeat_age_s)} ago (`, timeEl(w.heartbeat_at), ")"]),
            ...pair("Jobs done", h("span", { class: "jobs-done" }, w.jobs_done.toLocaleString())),
            ...pair("Started", timeEl(w.started_at)))),
        h("section", { class: "card", "aria-labelledby": "worker-kinds-title" },
          h("h2", { id: "worker-kinds-title" }, `Kinds (${w.kinds.length})`),
          table("Kinds this worker runs", ["Kind", "Default timeout", "CPU-bound"],
            w.kinds.map((k) => h("tr", { "data-kind": k.kind },
              h("th", { scope: "row", class: "mono" }, k.kind),
              h("td", {}, k.timeout_s === null ? "none" : duration(k.timeout_s)),
              h("td", {}, k.cpu_bound ? "yes (process pool)" : "no (event loop)"))),
            { empty: "This worker published no kinds (an older version?)." }))),
      h("section", { class: "card", "aria-labelledby": "worker-jobs-title" },
        h("h2", { id: "worker-jobs-title" }, `Jobs it holds (${w.jobs.length})`),
        table("Jobs this worker holds", ["Job", "Kind", "Queue", "Owner", "Attempt", "Progress", "Started"],
          w.jobs.map((j) => h("tr", { "data-job-id": j.id },
            h("th", { scope: "row" }, h("a", { href: `#/jobs/${j.id}` }, `#${j.id}`)),
            h("td", { class: "mono" }, j.kind), h("td", {}, j.queue), h("td", {}, j.owner),
            h("td", { class: "num" }, j.attempt),
            h("td", {}, h("div", { class: "progress-cell" }, progressBar(j.progress, `Progress of job ${j.id}`),
              j.progress_message ? h("span", { class: "progress-text" }, j.progress_message) : null)),
            h("td", {}, timeEl(j.started_at)))),
          { empty: "It holds no job right now: its queues are empty, or other workers got there first." })));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  await refresh();
  if (gone || signal.aborted) return;
  timer = setInterval(() => refresh().catch((err) => notice(errorText(err), "error")), REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}

function pair(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}
