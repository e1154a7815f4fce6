// API keys (admin): every key with its role and state; revoke a live one after confirming;
// create one, its key shown once with a Copy button, and the server's own message beside
// the field it refuses (a name taken or malformed, a role unknown).

import { ApiError, get, post, request } from "./api.js";
import { act, clear, confirmDialog, errorText, h, message, notice, table, timeEl } from "./ui.js";

export async function render(root, { me, signal }) {
  if (!me.is_admin) {
    clear(root, h("h1", {}, "API keys"),
      message("empty", "This page is for admins: API keys are listed, created and revoked by an admin. Sign in with an admin key (conveyor keys create --name NAME --role admin) to manage them."));
    return;
  }
  const own = (name) => me.source === "key" && me.name === name;

  const name = h("input", { id: "key-name", name: "name", type: "text", autocomplete: "off", spellcheck: "false", size: 24, "aria-describedby": "key-name-help key-name-problem" });
  const nameProblem = h("p", { id: "key-name-problem", class: "inline-error", role: "alert" });
  const role = h("select", { id: "key-role", name: "role", "aria-describedby": "key-role-problem" },
    h("option", { value: "user", selected: true }, "user: its own jobs"),
    h("option", { value: "admin" }, "admin: everything"));
  const roleProblem = h("p", { id: "key-role-problem", class: "inline-error", role: "alert" });
  const create = h("button", { type: "submit" }, "Create key");
  const form = h("form", { class: "card key-form", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a key"),
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: "key-name" }, "Name"), name, nameProblem),
      h("div", { class: "field" }, h("label", { for: "key-role" }, "Role"), role, roleProblem),
      h("div", { class: "field" }, create)),
    h("p", { id: "key-name-help", class: "muted small" },
      "Letters, digits and _ . : - (up to 128). The name is the key's identity: its jobs are owned by ",
      h("code", {}, "key:NAME"), ", so a name is never given to a second key, even after it is revoked."));
  const secret = h("section", { class: "card secret", "aria-labelledby": "secret-title", hidden: true });
  const list = h("div", {}, message("loading", "Loading the keys…"));
  clear(root, h("h1", {}, "API keys"),
    h("p", { class: "muted" }, "Who may call the API, and as what. A revoked key answers 401 from its next request, in every API process."),
    secret, form, list);

  function showSecret(made) {
    const value = h("code", { class: "secret-value", "data-secret": "" }, made.key);
    const copy = h("button", { type: "button", class: "small" }, "Copy");
    const done = h("button", { type: "button", class: "secondary small" }, "Done: hide it");
    copy.addEventListener("click", async () => {
      try {
        if (!navigator.clipboard) throw new Error("no clipboard");
        await navigator.clipboard.writeText(made.key);
        copy.textContent = "Copied";
      } catch {
        window.getSelection().selectAllChildren(value);
        notice("This browser does not let the page copy: the key is selected, copy it with Ctrl+C (⌘C).");
      }
    });
    done.addEventListener("click", () => { clear(secret); secret.hidden = true; name.focus(); });
    clear(secret,
      h("h2", { id: "secret-title" }, `The key of ${made.name} (${made.role})`),
      h("p", { class: "secret-warning" },
        h("strong", {}, "Copy it now: it will not be shown again."),
        " Only its hash is stored, so it cannot be retrieved later; if it is lost, revoke it and create another."),
      h("div", { class: "secret-row" }, value, copy),
      h("div", { class: "actions" }, done));
    secret.hidden = false;
    copy.focus();
  }

  function problemFor(err) {
    if (!(err instanceof ApiError)) return null;
    if (err.status === 409) return nameProblem;
    if (err.status !== 422) return null;
    const field = Array.isArray(err.details) && err.details[0] ? err.details[0].field : "";
    return field === "role" ? roleProblem : nameProblem;
  }

  function resetProblems() {
    for (const [input, problem] of [[name, nameProblem], [role, roleProblem]]) {
      problem.textContent = "";
      input.removeAttribute("aria-invalid");
    }
  }

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(create, async () => {
      resetProblems();
      let made;
      try {
        made = await post("/v1/keys", { name: name.value.trim(), role: role.value });
      } catch (err) {
        const problem = problemFor(err);
        if (!problem) throw err;
        const input = problem === roleProblem ? role : name;
        problem.textContent = errorText(err);
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      name.value = "";
      showSecret(made);
      notice(`Created the ${made.role} key ${made.name}.`);
      await refresh();
    });
  });

  function row(k) {
    const cells = [
      h("th", { scope: "row" }, k.name, own(k.name) ? h("span", { class: "muted small" }, " (you)") : null),
      h("td", {}, k.role),
      h("td", {}, timeEl(k.created_at)),
      h("td", { class: "key-state" }, k.revoked_at
        ? [h("span", { class: "badge state-cancelled" }, "revoked"), " ", timeEl(k.revoked_at)]
        : h("span", { class: "badge state-succeeded" }, "live")),
    ];
    const actions = h("td", {});
    if (!k.revoked_at) {
      const revoke = h("button", { type: "button", class: "danger small", "aria-label": `Revoke ${k.name}` }, "Revoke");
      revoke.addEventListener("click", () => act(revoke, async () => {
        const ok = await confirmDialog(own(k.name)
          ? `Revoke ${k.name}, the key you are signed in with? Whatever uses it stops at once, this page included: you will have to sign in with another key. This cannot be undone.`
          : `Revoke ${k.name}? Whatever uses it stops at once: its next request to the API answers 401. This cannot be undone, and the name stays taken.`,
        `Revoke ${k.name}`);
        if (!ok) return;
        const revoked = await request("DELETE", `/v1/keys/${encodeURIComponent(k.name)}`);
        if (revoked.revoked_own_key) {
          notice(`You revoked ${k.name}, the key this page was signed in with: sign in with another key.`, "error");
          window.dispatchEvent(new CustomEvent("conveyor:unauthorized"));
          return;
        }
        notice(`${k.name} is revoked: it answers 401 from now on.`);
        await refresh();
      }));
      actions.append(h("div", { class: "row-actions" }, revoke));
    }
    return h("tr", { "data-key": k.name, "data-state": k.revoked_at ? "revoked" : "live" }, cells, actions);
  }

  async function refresh() {
    const keys = await get("/v1/keys");
    if (signal.aborted) return;
    clear(list, table("API keys", ["Name", "Role", "Created", "State", ""], keys.map(row),
      { empty: "No API keys yet. Create one above; it works at once." }));
  }

  await refresh().catch((err) => clear(list, message("error", errorText(err))));
}
