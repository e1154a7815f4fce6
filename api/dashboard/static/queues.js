// Queues: depth, running, last minute's outcomes and oldest wait, refreshed every few
// seconds; an admin pauses and resumes a queue and edits its concurrency limit in place,
// with the server's own message shown beside the field when it refuses a value.

import { get, patch } from "./api.js";
import { act, clear, duration, errorText, h, message, notice, table } from "./ui.js";

const REFRESH_MS = 3000;

export async function render(root, { me, signal }) {
  const rows = new Map();  // queue → its <tr>, kept so an edit in progress survives a refresh
  const holder = h("div", {}, message("loading", "Loading the queues…"));
  clear(root, h("h1", {}, "Queues"),
    h("p", { class: "muted" }, me.is_admin
      ? "A paused queue takes jobs but starts none; a limit caps how many of its jobs run at once over every worker (empty: no limit). Every worker's next claim obeys."
      : "Counts of your own jobs. Admins pause queues and set their limits here."),
    holder);

  async function refresh() {
    const queues = await get("/v1/queues");
    if (signal.aborted) return;
    if (!queues.length) {
      clear(holder, message("empty", "No queue has jobs yet. Queues appear here as soon as a job is submitted to them."));
      rows.clear();
      return;
    }
    const body = queues.map((q) => {
      let tr = rows.get(q.queue);
      if (!tr) {
        tr = h("tr", { "data-queue": q.queue });
        rows.set(q.queue, tr);
      }
      fill(tr, q);
      return tr;
    });
    if (!holder.querySelector("table")) {
      clear(holder, table("Queues", ["Queue", "Queued", "Running", "Succeeded (1 min)", "Dead (1 min)", "Oldest wait", "State", "Concurrency", ""], body));
    } else {
      holder.querySelector("tbody").replaceChildren(...body);
    }
  }

  function fill(tr, q) {
    const editing = tr.contains(document.activeElement) && document.activeElement.tagName === "INPUT";
    const cells = [
      h("th", { scope: "row" }, q.queue),
      h("td", { class: "num" }, q.queued), h("td", { class: "num" }, q.running),
      h("td", { class: "num" }, q.succeeded_last_minute), h("td", { class: "num" }, q.dead_last_minute),
      h("td", { class: "num" }, q.oldest_queued_age_s === null ? "—" : duration(q.oldest_queued_age_s)),
      h("td", { class: "queue-state" }, h("span", { class: `badge ${q.paused ? "state-dead" : "state-succeeded"}` }, q.paused ? "paused" : "claiming")),
    ];
    if (!me.is_admin) {
      tr.replaceChildren(...cells, h("td", { class: "num" }, q.concurrency ?? "no limit"), h("td", {}));
      return;
    }
    if (editing) {  // keep the field the person is typing in; refresh the rest
      const keep = [...tr.children].slice(cells.length);
      tr.replaceChildren(...cells, ...keep);
      return;
    }
    const limitId = `limit-${q.queue}`, problemId = `limit-problem-${q.queue}`;
    const limit = h("input", { id: limitId, name: "concurrency", value: q.concurrency ?? "", size: 6, placeholder: "none", "aria-describedby": problemId });
    const problem = h("p", { id: problemId, class: "inline-error", role: "alert" });
    const save = h("button", { type: "submit", class: "small" }, "Set");
    const form = h("form", { class: "cron-form" },
      h("label", { for: limitId, class: "visually-hidden" }, `Concurrency limit of ${q.queue}`), limit, save, problem);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(save, async () => {
        problem.textContent = "";
        limit.removeAttribute("aria-invalid");
        const text = limit.value.trim();
        const value = text === "" || text === "none" ? null : Number(text);
        try {
          const updated = await patch(`/v1/queues/${encodeURIComponent(q.queue)}`, { concurrency: Number.isNaN(value) ? text : value });
          notice(updated.concurrency === null ? `${q.queue} has no limit now.` : `At most ${updated.concurrency} of ${q.queue}'s jobs run at once now.`);
          limit.blur();
          await refresh();
        } catch (err) {
          problem.textContent = errorText(err);
          limit.setAttribute("aria-invalid", "true");
          limit.focus();
        }
      });
    });
    const toggle = h("button", { type: "button", class: q.paused ? "small" : "secondary small", "aria-label": `${q.paused ? "Resume" : "Pause"} ${q.queue}` },
      q.paused ? "Resume" : "Pause");
    toggle.addEventListener("click", () => act(toggle, async () => {
      const updated = await patch(`/v1/queues/${encodeURIComponent(q.queue)}`, { paused: !q.paused });
      notice(updated.paused ? `${q.queue} is paused: nothing new starts.` : `${q.queue} is claimed again.`);
      await refresh();
    }));
    tr.replaceChildren(...cells, h("td", {}, form), h("td", {}, h("div", { class: "row-actions" }, toggle)));
  }

  await refresh();
  const timer = setInterval(() => refresh().catch((err) => notice(errorText(err), "error")), REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}
