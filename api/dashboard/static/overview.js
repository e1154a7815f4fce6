// Overview: queues with their counts, finished jobs per minute, live workers (admins only:
// hosts and pids are the deployment's). Re-read every few seconds while shown (these are
// aggregates; the per-job changes stream elsewhere).

import { get } from "./api.js";
import { throughputChart } from "./chart.js";
import { ago, clear, duration, errorText, h, message, table } from "./ui.js";
import { workerHref } from "./workers.js";

const REFRESH_MS = 5000;

export async function render(root, { me, signal }) {
  const queues = h("section", { "aria-labelledby": "queues-title", class: "card" });
  const chart = h("section", { "aria-labelledby": "throughput-title", class: "card" });
  const workers = h("section", { "aria-labelledby": "workers-title", class: "card" });
  const updated = h("p", { class: "muted small", "aria-live": "off" });
  clear(root, h("div", { class: "title-row" }, h("h1", {}, "Overview"), updated),
    h("div", { class: "grid" }, queues, chart), me.is_admin ? workers : null);

  async function refresh() {
    const [q, t, w] = await Promise.allSettled([
      get("/v1/queues"), get("/v1/throughput?minutes=15"),
      me.is_admin ? get("/v1/workers") : Promise.resolve([]),
    ]);
    if (signal.aborted) return;
    clear(queues, h("h2", { id: "queues-title" }, "Queues"),
      h("p", { class: "muted small" }, "Queued and running now; succeeded, dead and cancelled in the last minute."),
      q.status === "rejected" ? message("error", errorText(q.reason)) :
        table("Queues", ["Queue", "Queued", "Running", "Succeeded", "Dead", "Cancelled", "Oldest wait"],
          q.value.map((r) => h("tr", {},
            h("th", { scope: "row" }, r.queue), h("td", { class: "num" }, r.queued),
            h("td", { class: "num" }, r.running), h("td", { class: "num" }, r.succeeded_last_minute),
            h("td", { class: "num" }, r.dead_last_minute), h("td", { class: "num" }, r.cancelled_last_minute),
            h("td", { class: "num" }, r.oldest_queued_age_s === null ? "—" : duration(r.oldest_queued_age_s)))),
          { empty: "No queue has jobs right now. Submit one (POST /v1/jobs or `conveyor submit demo.sleep`) and it shows here." }));
    clear(chart, h("h2", { id: "throughput-title" }, "Finished per minute"),
      t.status === "rejected" ? message("error", errorText(t.reason)) : throughputChart(t.value.points));
    clear(workers, h("h2", { id: "workers-title" }, "Workers"),
      w.status === "rejected" ? message("error", errorText(w.reason)) :
        table("Workers", ["Worker", "Host / pid", "Queues", "Running / slots", "Last heartbeat", "Started"],
          w.value.map((r) => h("tr", {},
            h("th", { scope: "row", class: "mono" }, h("a", { href: workerHref(r.id) }, r.id)), h("td", {}, `${r.host} / ${r.pid}`),
            h("td", {}, r.queues.join(", ")), h("td", { class: "num" }, `${r.running} / ${r.concurrency}`),
            h("td", {}, ago(r.heartbeat_at)), h("td", {}, ago(r.started_at)))),
          { empty: "No worker is running, so nothing is being processed. Start one with `conveyor worker` (or `make run`)." }));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}
