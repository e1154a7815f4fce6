// One job: state, progress, payload, result, every failed attempt's error with the tail of
// its traceback, and the event timeline. While the job is unfinished its stream keeps the
// page current; a state change re-reads the job and its events.

import { ApiError, follow, get, post } from "./api.js";
import { heatmap } from "./heatmap.js";
import {
  act, clear, duration, errorText, h, json, message, notice, progressBar, stateBadge, TERMINAL, timeEl,
} from "./ui.js";

export async function render(root, { params, signal }) {
  const id = Number(params[0]);
  let job, events;
  try {
    [job, events] = await Promise.all([get(`/v1/jobs/${id}`), get(`/v1/jobs/${id}/events`)]);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      clear(root, h("h1", {}, `Job #${id}`),
        message("empty", `There is no job #${id} that this key can see: it may belong to another user, or have been pruned.`));
      return;
    }
    throw err;
  }
  if (signal.aborted) return;
  const live = h("p", { class: "live-status", role: "status" });
  const page = h("div", {});
  clear(root, page);

  function draw() {
    const actions = h("div", { class: "actions" });
    if (["waiting", "queued", "running"].includes(job.state) && !job.cancel_requested_at) {
      const b = h("button", { type: "button", class: "danger" }, "Cancel job");
      b.addEventListener("click", () => act(b, async () => {
        const r = await post(`/v1/jobs/${id}/cancel`);
        notice(r.cancel_requested ? "Cancel requested: the worker stops the job within seconds." : `The job is ${r.state}.`);
        await reload();
      }));
      actions.append(b);
    }
    if (["dead", "cancelled"].includes(job.state)) {
      const b = h("button", { type: "button" }, "Retry job");
      b.addEventListener("click", () => act(b, async () => {
        await post(`/v1/jobs/${id}/retry`);
        notice(`Job #${id} is queued again with a fresh budget of attempts.`);
        await reload();
        watch();
      }));
      actions.append(b);
    }
    const ran = job.started_at && job.finished_at
      ? duration((new Date(job.finished_at) - new Date(job.started_at)) / 1000) : null;
    clear(page,
      h("div", { class: "title-row start" },
        h("h1", {}, `Job #${job.id} `, h("span", { class: "mono kind" }, job.kind)),
        stateBadge(job.state, job.cancel_requested_at && !TERMINAL.includes(job.state) ? " (cancelling)" : ""),
        live),
      actions,
      h("section", { class: "card", "aria-labelledby": "progress-title" },
        h("h2", { id: "progress-title" }, "Progress"),
        h("div", { class: "progress-cell" },
          progressBar(job.progress, "Progress"),
          h("span", { class: "progress-text", "aria-live": "polite" }, `${job.progress}%`,
            job.progress_message && job.state !== "succeeded" ? ` — ${job.progress_message}` : ""))),
      h("div", { class: "grid" },
        h("section", { class: "card", "aria-labelledby": "details-title" },
          h("h2", { id: "details-title" }, "Details"),
          h("dl", { class: "details" },
            ...pair("Queue", job.queue), ...pair("Owner", job.owner),
            ...pair("Attempt", `${job.attempt} of ${job.max_attempts}`),
            ...pair("Priority", job.priority),
            ...pair("Created", timeEl(job.created_at)), ...pair("Runs at", timeEl(job.run_at)),
            ...pair("Started", timeEl(job.started_at)),
            ...pair("Finished", job.finished_at ? [timeEl(job.finished_at), ran ? ` (ran ${ran})` : ""] : "—"),
            ...pair("Timeout", job.timeout_s ? duration(job.timeout_s) : "none"),
            ...pair("Idempotency key", job.idempotency_key || "—"))),
        h("section", { class: "card", "aria-labelledby": "payload-title" },
          h("h2", { id: "payload-title" }, "Payload"), json(job.payload),
          h("h2", {}, "Result"),
          job.result === null ? noResult(job) : json(job.result))),
      gridCard(job),
      h("section", { class: "card", "aria-labelledby": "errors-title" },
        h("h2", { id: "errors-title" }, `Errors (${job.errors.length})`),
        job.errors.length === 0 ? message("empty", "No attempt has failed.") :
          h("ol", { class: "errors" }, job.errors.map((e) => h("li", {},
            h("p", {}, h("strong", {}, `Attempt ${e.attempt}: ${e.type}`), " — ", e.message, " · ", timeEl(e.at)),
            e.traceback ? h("details", {}, h("summary", {}, "Traceback (last lines)"), h("pre", { class: "traceback" }, e.traceback)) : null)))),
      h("section", { class: "card", "aria-labelledby": "events-title" },
        h("h2", { id: "events-title" }, "Timeline"),
        h("ol", { class: "timeline" }, timeline(job, events).map((e) => h("li", {}, timeEl(e.at), " ",
          h("strong", {}, e.type), " ", h("span", { class: "mono small" }, describe(e.data)))))));
  }

  async function reload() {
    [job, events] = await Promise.all([get(`/v1/jobs/${id}`), get(`/v1/jobs/${id}/events`)]);
    if (!signal.aborted) draw();
  }

  let following = false;
  function watch() {
    if (following || TERMINAL.includes(job.state)) return;
    following = true;
    follow(`/v1/jobs/${id}/stream`, {
      signal,
      ends: (_t, d) => TERMINAL.includes(d.state),
      onStatus: (s) => { live.textContent = s === "live" ? "Live" : "Connection lost — reconnecting…"; },
      onEvent: (type, d) => {
        if (type === "progress") {
          job = { ...job, progress: d.progress, progress_message: d.progress_message };
          draw();
        } else {
          reload().catch((err) => notice(errorText(err), "error"));
        }
      },
    }).catch((err) => notice(errorText(err), "error")).finally(() => {
      following = false;
      if (!signal.aborted) live.textContent = "";
    });
  }

  draw();
  watch();
}

// What stands where a result would: why there is none.
function noResult(job) {
  const last = job.errors[job.errors.length - 1];
  const why = last ? `${last.type}: ${last.message}` : null;
  const text = {
    succeeded: "The job returned nothing.",
    dead: `No result: the job is dead after ${job.attempt} attempt${job.attempt === 1 ? "" : "s"}${why ? `, the last with ${why}` : ""}. Retry it once the cause is fixed.`,
    cancelled: `No result: the job was cancelled${why ? ` (${why})` : ""}.`,
    waiting: "No result yet: the job waits for the jobs it depends on to succeed.",
  }[job.state] || "No result yet.";
  return message(job.state === "dead" ? "error" : "empty", text);
}

// The job's events with its creation, latest start and end from the row, in time order; the
// end once, though the event log may have recorded it too.
function timeline(job, events) {
  const all = [{ at: job.created_at, type: "created" }, ...events];
  if (job.started_at) all.push({ at: job.started_at, type: "started", data: { attempt: job.attempt } });
  if (job.finished_at && !events.some((e) => e.type === job.state)) all.push({ at: job.finished_at, type: job.state });
  return all.sort((a, b) => new Date(a.at) - new Date(b.at));
}

// An optimization's grids, one heatmap per symbol, each linked to its chosen strategy.
function gridCard(job) {
  const symbols = job.kind === "strategy.optimize" ? Object.entries(job.result?.symbols || {}).filter(([, e]) => e.grid) : [];
  if (!symbols.length) return null;
  return h("section", { class: "card", "aria-labelledby": "grids-title" },
    h("h2", { id: "grids-title" }, "Grid"),
    symbols.map(([symbol, e]) => h("div", {},
      h("h3", {}, symbol, e.best?.strategy_id ? [" · ", h("a", { href: `#/strategies/${e.best.strategy_id}` }, "the chosen strategy")] : null),
      heatmap(symbol, e.grid, e.best?.params))));
}

function pair(term, value) {
  return [h("dt", {}, term), h("dd", {}, value)];
}

function describe(data) {
  if (!data || typeof data !== "object") return data ?? "";
  return Object.entries(data).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
}
