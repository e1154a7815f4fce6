// Active jobs: queued and running jobs with their progress, and what finished in the last
// five minutes, kept current by one Server-Sent Events stream for all of them
// (GET /v1/jobs/active/stream), so the page never reloads or polls per job.

import { follow, post } from "./api.js";
import { act, ago, clear, errorText, h, message, notice, progressBar, stateBadge } from "./ui.js";

export async function render(root, { signal }) {
  const jobs = new Map();
  const rows = new Map();
  const status = h("p", { class: "live-status", role: "status" }, "Connecting…");
  const body = h("tbody", { "aria-live": "polite", "aria-relevant": "additions removals" });
  const tableEl = h("div", { class: "table-wrap", hidden: true },
    h("table", { class: "active" },
      h("caption", { class: "visually-hidden" }, "Active jobs"),
      h("thead", {}, h("tr", {}, ["Job", "Kind", "Queue", "State", "Progress", "Owner", "Started", ""].map(
        (t) => h("th", { scope: "col" }, t)))),
      body));
  const empty = message("empty", "No active jobs. Jobs appear here as soon as they are queued, with their progress, and stay five minutes after they finish.");
  clear(root, h("div", { class: "title-row" }, h("h1", {}, "Active jobs"), status), tableEl, empty);

  function row(j) {
    const cancel = ["waiting", "queued", "running"].includes(j.state) && !j.cancel_requested
      ? h("button", { type: "button", class: "secondary small", "aria-label": `Cancel job ${j.job_id}` }, "Cancel")
      : null;
    cancel?.addEventListener("click", () => act(cancel, async () => {
      const r = await post(`/v1/jobs/${j.job_id}/cancel`);
      notice(r.cancel_requested ? `Cancel requested for job #${j.job_id}: its worker stops it within seconds.` : `Job #${j.job_id} is ${r.state}.`);
    }));
    return h("tr", { "data-job-id": j.job_id, "data-state": j.state },
      h("th", { scope: "row" }, h("a", { href: `#/jobs/${j.job_id}` }, `#${j.job_id}`)),
      h("td", { class: "mono" }, j.kind),
      h("td", {}, j.queue),
      h("td", {}, stateBadge(j.state, j.cancel_requested && !["cancelled", "succeeded", "dead"].includes(j.state) ? " (cancelling)" : "")),
      h("td", {}, h("div", { class: "progress-cell" },
        progressBar(j.progress, `Progress of job ${j.job_id}`),
        h("span", { class: "progress-text" }, `${j.progress}%`, j.progress_message && j.state !== "succeeded" ? ` — ${j.progress_message}` : ""))),
      h("td", {}, j.owner),
      h("td", {}, j.started_at ? ago(j.started_at) : "not yet"),
      h("td", {}, cancel));
  }

  function show() {
    tableEl.hidden = jobs.size === 0;
    empty.hidden = jobs.size !== 0;
  }

  function put(j) {
    jobs.set(j.job_id, j);
    const tr = row(j);
    const old = rows.get(j.job_id);
    if (old) old.replaceWith(tr);
    else body.prepend(tr);  // events come oldest first: the newest ends on top
    rows.set(j.job_id, tr);
  }

  const onEvent = (type, data) => {
    if (type === "jobs") {
      jobs.clear(); rows.clear(); body.replaceChildren();
      [...data.jobs].reverse().forEach(put);
    } else if (type === "job") {
      put(data);
    } else if (type === "gone") {
      jobs.delete(data.job_id);
      rows.get(data.job_id)?.remove();
      rows.delete(data.job_id);
    }
    show();
  };
  const onStatus = (s) => {
    status.textContent = s === "live" ? "Live" : "Connection lost — reconnecting…";
    status.className = `live-status ${s}`;
  };
  follow("/v1/jobs/active/stream?recent_s=300", { onEvent, onStatus, signal }).catch((err) => {
    if (!signal.aborted) clear(root, h("h1", {}, "Active jobs"), message("error", errorText(err)));
  });
}
