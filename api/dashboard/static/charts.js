// Charts (admins): per kind over the last hour or day, how many finished, the failure rate,
// and how long jobs waited (due → claimed) and ran; queue depth over time; and for one kind,
// its wait and run p95 and its failures per bucket. All from the workers' per-minute
// aggregates (GET /v1/stats/kinds and /v1/stats/depth), re-read every few seconds while shown.

import { get, query } from "./api.js";
import { clockTicks, stackedBars, timeChart } from "./chart.js";
import { clear, duration, errorText, h, message, table } from "./ui.js";

const REFRESH_MS = 10000;
const WINDOWS = [["1h", "Last hour"], ["24h", "Last day"]];
const LINE_CLASSES = 6;  // .line.s0 … .line.s5 in style.css, then round again

function percent(rate) {
  if (rate === null || rate === undefined) return "—";
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.1 ? 1 : 0)} %`;
}

function seconds(row, field) {
  const v = row[field];
  if (v === null || v === undefined) return "—";
  return (row.over_last_bound || []).includes(field) ? `> ${duration(v)}` : duration(v);
}

export async function render(root, { me, signal }) {
  if (!me.is_admin) {
    clear(root, h("h1", {}, "Charts"),
      message("empty", "The charts show the whole deployment's figures, every owner's jobs, so they need an admin's key. Sign in with one to see them."));
    return;
  }
  let windowKey = "1h";
  let chosen = null;  // the kind whose series is drawn; the busiest one until someone picks

  const toggles = WINDOWS.map(([key, name]) => {
    const b = h("button", { type: "button", class: "secondary small", "data-window": key, "aria-pressed": String(key === windowKey) }, name);
    b.addEventListener("click", () => {
      windowKey = key;
      for (const t of toggles) t.setAttribute("aria-pressed", String(t.dataset.window === windowKey));
      refresh().catch(() => {});
    });
    return b;
  });
  const updated = h("p", { class: "muted small", "aria-live": "off" });
  const kindsCard = h("section", { class: "card", "aria-labelledby": "kinds-title" });
  const depthCard = h("section", { class: "card", "aria-labelledby": "depth-title" });
  const kindCard = h("section", { class: "card", "aria-labelledby": "kind-title" });
  clear(root,
    h("div", { class: "title-row" }, h("h1", {}, "Charts"),
      h("div", { class: "actions toggle", role: "group", "aria-label": "Window" }, toggles), updated),
    kindsCard, depthCard, kindCard);

  function kindsTable(body) {
    return table("Kinds", ["Kind", "Finished", "Dead", "Retried", "Failure rate", "Wait p50", "Wait p95", "Run p50", "Run p95"],
      body.kinds.map((k) => {
        const tr = h("tr", { "data-kind": k.kind, class: k.kind === chosen ? "chosen" : null },
          h("th", { scope: "row" }, h("button", { type: "button", class: "link-button", "aria-label": `Chart ${k.kind}` }, k.kind)),
          h("td", { class: "num" }, k.finished), h("td", { class: "num" }, k.dead),
          h("td", { class: "num" }, k.retried + k.lease_expired),
          h("td", { class: "num", "data-failure-rate": k.failure_rate ?? "" }, percent(k.failure_rate)),
          h("td", { class: "num" }, seconds(k, "wait_p50_s")), h("td", { class: "num" }, seconds(k, "wait_p95_s")),
          h("td", { class: "num" }, seconds(k, "run_p50_s")), h("td", { class: "num" }, seconds(k, "run_p95_s")));
        tr.querySelector("button").addEventListener("click", () => { chosen = k.kind; refresh().catch(() => {}); });
        return tr;
      }),
      { empty: "No job finished in this window. Once workers run jobs, each kind shows here within a heartbeat (try `conveyor submit demo.sleep`)." });
  }

  function depthChart(d) {
    const span = d.window === "1h" ? "the last hour, a sample a minute" : "the last day, the most of every 5 minutes";
    if (!d.queues.length) {
      return message("empty", `No queue had jobs waiting or running in ${span.split(",")[0]}. A queue shows here once a worker counts it (once a minute).`);
    }
    return timeChart({
      label: `Jobs queued per queue over ${span}`,
      ts: d.buckets, height: 220, counts: true, xTicks: clockTicks, format: (v) => String(v),
      series: d.queues.map((q, i) => ({ name: q.queue, cls: `s${i % LINE_CLASSES}`, values: q.queued })),
    });
  }

  function kindCharts(body) {
    const series = body.series;
    const ts = series.points.map((p) => p.bucket);
    const per = { 1: "minute", 60: "hour" }[body.bucket_minutes] || `${body.bucket_minutes} minutes`;
    const timed = series.points.some((p) => p.wait_p95_s !== null || p.run_p95_s !== null);
    return [
      timed ? timeChart({
        label: `${series.kind}: wait and run p95 per ${per}, in seconds`,
        ts, height: 220, xTicks: clockTicks, format: (v) => duration(v), min: 0,
        series: [
          { name: "Wait p95 (due → claimed)", cls: "wait", values: series.points.map((p) => p.wait_p95_s) },
          { name: "Run p95", cls: "run", values: series.points.map((p) => p.run_p95_s) },
        ],
      }) : message("empty", `No ${series.kind} job started in this window, so there is no wait or run time to chart.`),
      h("h3", {}, `Failures per ${per}`),
      stackedBars({
        label: `${series.kind}: failed attempts per ${per}`, ts, empty: "no attempt failed in this window",
        stacks: [
          { key: "dead", name: "Dead", values: series.points.map((p) => p.dead) },
          { key: "retried", name: "Retried", values: series.points.map((p) => p.retried) },
          { key: "lease_expired", name: "Lease expired", values: series.points.map((p) => p.lease_expired) },
        ],
      }),
    ];
  }

  async function refresh() {
    const win = windowKey;
    const [k, d] = await Promise.allSettled([
      get(`/v1/stats/kinds${query({ window: win, kind: chosen })}`),
      get(`/v1/stats/depth${query({ window: win })}`),
    ]);
    if (signal.aborted || win !== windowKey) return;
    if (k.status === "fulfilled" && chosen === null && k.value.kinds.length) {
      // nobody picked one yet: the kind with the most finished jobs, read again with its series
      chosen = [...k.value.kinds].sort((a, b) => b.finished - a.finished)[0].kind;
      return refresh();
    }
    clear(kindsCard, h("h2", { id: "kinds-title" }, "Kinds"),
      h("p", { class: "muted small" }, "Attempts that ended in the window; failure rate = dead ÷ (succeeded + dead); wait = due → claimed. Pick a kind to chart it."),
      k.status === "rejected" ? message("error", errorText(k.reason)) : kindsTable(k.value));
    clear(depthCard, h("h2", { id: "depth-title" }, "Queue depth"),
      d.status === "rejected" ? message("error", errorText(d.reason)) : depthChart(d.value));
    clear(kindCard, h("h2", { id: "kind-title" }, chosen ? `Kind ${chosen}` : "One kind"),
      k.status === "rejected" ? message("error", errorText(k.reason))
        : k.value.series ? kindCharts(k.value)
          : message("empty", "Pick a kind in the table above to chart its wait, run time and failures."));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  await refresh();
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}
