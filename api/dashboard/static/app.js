// The page's shell: sign-in, the section links, and a hash router that gives each view the
// main element and an AbortSignal that ends its streams and timers when the person leaves.

import { ApiError, get, session } from "./api.js";
import { clear, errorText, h, message } from "./ui.js";
import * as overview from "./overview.js";
import * as active from "./active.js";
import * as job from "./job.js";
import * as jobs from "./jobs.js";
import * as dead from "./dead.js";
import * as schedules from "./schedules.js";
import * as queues from "./queues.js";
import * as results from "./results.js";
import * as strategy from "./strategy.js";
import * as workers from "./workers.js";
import * as worker from "./worker.js";
import * as kinds from "./kinds.js";
import * as keys from "./keys.js";
import * as charts from "./charts.js";

const view = document.getElementById("view");
const ctx = { me: null };
let leaving = null;

const ROUTES = [
  [/^#?\/?$/, overview, "Overview"],
  [/^#\/jobs(\?.*)?$/, jobs, "Jobs"],
  [/^#\/active$/, active, "Active jobs"],
  [/^#\/jobs\/(\d+)$/, job, "Job"],
  [/^#\/dead(\?.*)?$/, dead, "Dead letters"],
  [/^#\/queues$/, queues, "Queues"],
  [/^#\/charts$/, charts, "Charts"],
  [/^#\/schedules$/, schedules, "Schedules"],
  [/^#\/results$/, results, "Results"],
  [/^#\/strategies\/(\d+)$/, strategy, "Strategy"],
  [/^#\/workers$/, workers, "Workers"],
  [/^#\/workers\/([^/?#]+)$/, worker, "Worker"],
  [/^#\/kinds$/, kinds, "Kinds"],
  [/^#\/keys$/, keys, "API keys"],
];

function signIn(reason) {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").hidden = true;
  document.title = "Sign in · Conveyor";
  const input = h("input", {
    id: "key", name: "key", type: "password", autocomplete: "off", required: true,
    "aria-describedby": "key-help",
  });
  const problem = h("p", { class: "message error", role: "alert", hidden: !reason }, reason || "");
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "Sign in"),
    h("label", { for: "key" }, "API key"),
    input,
    h("p", { id: "key-help", class: "muted" },
      "Create one with ", h("code", {}, "conveyor keys create --name NAME"),
      ". It is kept in this browser tab only and forgotten when the tab closes."),
    problem,
    button);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true;
    session.key = input.value.trim();
    try {
      ctx.me = await get("/v1/me");
      route();
    } catch (err) {
      session.key = null;
      problem.hidden = false;
      problem.textContent = err instanceof ApiError && err.status === 401
        ? `That key was not accepted: ${err.message.replace(/\.$/, "")}. Check it, or create a new one.`
        : errorText(err);
      button.disabled = false;
      input.focus();
    }
  });
  clear(view, form);
  input.focus();
}

async function route() {
  if (leaving) leaving.abort();
  leaving = new AbortController();
  if (!session.key) return signIn();
  if (!ctx.me) {
    clear(view, message("loading", "Checking your key…"));
    try {
      ctx.me = await get("/v1/me");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        session.key = null;
        return signIn("Your key is no longer accepted; sign in again.");
      }
      return clear(view, message("error", errorText(err)));
    }
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("who").hidden = false;
  document.getElementById("who-name").textContent =
    `${ctx.me.owner} (${ctx.me.is_admin ? "admin" : "user"})`;
  // Sections only an admin can use (`data-admin` in the nav) are not shown to a user; the
  // pages say so too, and the API answers 403 anyway.
  for (const a of document.querySelectorAll("#nav [data-admin]")) a.hidden = !ctx.me.is_admin;
  const hash = location.hash || "#/";
  const found = ROUTES.find(([re]) => re.test(hash));
  for (const a of document.querySelectorAll("#nav a")) {
    const here = a.getAttribute("href") === hash.split("?")[0] ||
      (hash.startsWith("#/jobs") && a.getAttribute("href") === "#/jobs") ||
      (hash.startsWith("#/strategies/") && a.getAttribute("href") === "#/results") ||
      (hash.startsWith("#/workers/") && a.getAttribute("href") === "#/workers");
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (!found) {
    document.title = "Not found · Conveyor";
    return clear(view, message("empty", "There is no such page here. Pick a section above."));
  }
  const [re, module, title] = found;
  document.title = `${title} · Conveyor`;
  clear(view, message("loading", "Loading…"));
  try {
    await module.render(view, { ...ctx, params: hash.match(re).slice(1), signal: leaving.signal });
  } catch (err) {
    if (!leaving.signal.aborted) clear(view, message("error", errorText(err)));
  }
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.key = null;
  ctx.me = null;
  location.hash = "#/";
  route();
});

window.addEventListener("conveyor:unauthorized", () => {
  if (!ctx.me) return;  // the sign-in form says it itself
  session.key = null;
  ctx.me = null;
  if (leaving) leaving.abort();
  signIn("Your key is no longer accepted (revoked?); sign in again.");
});

window.addEventListener("hashchange", route);
route();
