// Workers (admins only: hosts and pids are the deployment's): every live worker process with
// its version, queues, busy slots, heartbeat age and jobs done, re-read every few seconds;
// each row links to the worker's own page.

import { get } from "./api.js";
import { clear, duration, errorText, h, message, notice, table, timeEl } from "./ui.js";

const REFRESH_MS = 3000;

export function workerHref(id) {
  return `#/workers/${encodeURIComponent(id)}`;
}

export function forAdmins(root, what) {
  clear(root, h("h1", {}, what),
    message("empty", `${what} is for admins: it shows the deployment's hosts and processes. Sign in with an admin key (conveyor keys create --name NAME --role admin) to see it.`));
}

export async function render(root, { me, signal }) {
  if (!me.is_admin) return forAdmins(root, "Workers");
  const updated = h("p", { class: "muted small", "aria-live": "off" });
  const holder = h("div", {}, message("loading", "Loading the workers…"));
  clear(root, h("div", { class: "title-row" }, h("h1", {}, "Workers"), updated),
    h("p", { class: "muted" }, "Live worker processes. A worker that misses its heartbeats for a while is removed by the others, and its jobs go back to their queues when their leases expire."),
    holder);

  async function refresh() {
    const workers = await get("/v1/workers");
    if (signal.aborted) return;
    clear(holder, table("Workers",
      ["Worker", "Host / pid", "Version", "Queues", "Running / slots", "Last heartbeat", "Jobs done", "Started"],
      workers.map((w) => h("tr", { "data-worker-id": w.id },
        h("th", { scope: "row", class: "mono" }, h("a", { href: workerHref(w.id) }, w.id)),
        h("td", {}, `${w.host} / ${w.pid}`),
        h("td", { class: "mono" }, w.version || "—"),
        h("td", {}, w.queues.join(", ")),
        h("td", { class: "num" }, `${w.running} / ${w.concurrency}`),
        h("td", { class: "heartbeat" }, `${duration(w.heartbeat_age_s)} ago`),
        h("td", { class: "num jobs-done" }, w.jobs_done.toLocaleString()),
        h("td", {}, timeEl(w.started_at)))),
      { empty: "No worker is running, so nothing is being processed. Start one with `conveyor worker` (or `make run`)." }));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  await refresh();
  if (signal.aborted) return;
  const timer = setInterval(() => refresh().catch((err) => notice(errorText(err), "error")), REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}
