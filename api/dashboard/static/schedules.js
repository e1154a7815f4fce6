// Schedules (admin): next and last fire, enable/disable, trigger now, and the cron
// expression edited in place with the server's own validation message shown beside it.

import { get, patch, post } from "./api.js";
import { act, ago, clear, errorText, h, message, notice, table, timeEl } from "./ui.js";

export async function render(root, { me, signal }) {
  if (!me.is_admin) {
    clear(root, h("h1", {}, "Schedules"),
      message("empty", "Schedules are managed by admins. Sign in with an admin key (conveyor keys create --name NAME --role admin) to see and change them."));
    return;
  }
  const list = await get("/v1/schedules");
  if (signal.aborted) return;
  const body = list.map(row);
  clear(root, h("h1", {}, "Schedules"),
    table("Schedules", ["Name", "Job", "Cron", "Next fire", "Last fire", "Enabled", ""], body,
      { empty: "No schedules yet. Create one with POST /v1/schedules (see the API guide); it shows here with its next fire." }));

  function row(sc) {
    const tr = h("tr", { "data-schedule": sc.name });
    fill(tr, sc);
    return tr;
  }

  function fill(tr, sc) {
    const cronId = `cron-${sc.name}`;
    const problemId = `cron-problem-${sc.name}`;
    const cron = h("input", { id: cronId, name: "cron", value: sc.cron, size: 16, class: "mono", "aria-describedby": problemId });
    const problem = h("p", { id: problemId, class: "inline-error", role: "alert" });
    const save = h("button", { type: "submit", class: "small" }, "Save");
    const cronForm = h("form", { class: "cron-form" },
      h("label", { for: cronId, class: "visually-hidden" }, `Cron expression of ${sc.name}`), cron, save, problem);
    cronForm.addEventListener("submit", (e) => {
      e.preventDefault();
      act(save, async () => {
        problem.textContent = "";
        try {
          const updated = await patch(`/v1/schedules/${encodeURIComponent(sc.name)}`, { cron: cron.value.trim() });
          fill(tr, updated);
          notice(`${sc.name} now fires on “${updated.cron}”.`);
        } catch (err) {
          problem.textContent = errorText(err);
          cron.setAttribute("aria-invalid", "true");
          cron.focus();
        }
      });
    });
    const toggle = h("button", { type: "button", class: sc.enabled ? "secondary small" : "small", "aria-pressed": String(sc.enabled),
      "aria-label": `${sc.enabled ? "Disable" : "Enable"} ${sc.name}` }, sc.enabled ? "Disable" : "Enable");
    toggle.addEventListener("click", () => act(toggle, async () => {
      const updated = await patch(`/v1/schedules/${encodeURIComponent(sc.name)}`, { enabled: !sc.enabled });
      fill(tr, updated);
      notice(`${sc.name} is ${updated.enabled ? "enabled" : "disabled"}.`);
    }));
    const trigger = h("button", { type: "button", class: "secondary small", "aria-label": `Trigger ${sc.name} now` }, "Trigger now");
    trigger.addEventListener("click", () => act(trigger, async () => {
      const job = await post(`/v1/schedules/${encodeURIComponent(sc.name)}/trigger`);
      notice(`${sc.name} enqueued job #${job.id}.`);
    }));
    tr.replaceChildren(
      h("th", { scope: "row" }, sc.name),
      h("td", {}, h("span", { class: "mono" }, sc.kind), ` on ${sc.queue}`),
      h("td", {}, cronForm, h("span", { class: "muted small" }, sc.timezone)),
      h("td", {}, sc.enabled ? timeEl(sc.next_fire_at) : "— (disabled)"),
      h("td", {}, sc.last_fire_at ? [timeEl(sc.last_fire_at), h("br"), h("span", { class: "muted small" }, ago(sc.last_fire_at))] : "never"),
      h("td", { class: "enabled-cell" }, sc.enabled ? "yes" : "no"),
      h("td", {}, h("div", { class: "row-actions" }, toggle, trigger)));
  }
}
