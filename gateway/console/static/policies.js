// GenGuard policy console: versions, YAML editing with inline validation, diff, dry-run,
// shadow, approve, activate, roll back. Talks to /admin/policies/* with the API key kept in
// sessionStorage (shared with the audit explorer). Everything from the API is inserted as
// text (textContent), never as HTML.
"use strict";

const KEY = "genguard.apiKey";
const $ = (id) => document.getElementById(id);
let scope = "base";
let history = null;
let validateTimer = null;

async function api(method, path, body) {
  const response = await fetch(`/admin/policies${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${sessionStorage.getItem(KEY)}`,
      "Content-Type": "application/json",
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    error.status = response.status;
    error.data = data;
    throw error;
  }
  return data;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function status(message, isError) {
  const node = $("status");
  node.textContent = message;
  node.className = isError ? "error" : "";
}

function button(label, handler, name) {
  const node = el("button", label, "small quiet");
  node.type = "button";
  node.dataset.action = name;
  node.addEventListener("click", handler);
  return node;
}

async function step(label, run) {
  try {
    const message = await run();
    status(message || `${label}: done`);
    await loadHistory();
  } catch (error) {
    status(`${label}: ${error.message}`, true);
  }
}

// -- versions -------------------------------------------------------------------------------

async function loadScopes() {
  const data = await api("GET", "");
  const select = $("scope");
  select.replaceChildren();
  const names = new Set(data.scopes.map((s) => s.scope));
  names.add(data.default_scope);
  for (const name of [...names].sort()) select.append(el("option", name));
  scope = data.default_scope;
  select.value = scope;
}

async function loadHistory() {
  history = await api("GET", `/${scope}/history`);
  $("active-info").textContent =
    `active: v${history.active ?? "–"}` + (history.shadow ? ` · shadow: v${history.shadow}` : "");
  const body = $("versions").querySelector("tbody");
  body.replaceChildren();
  for (const v of history.versions) {
    const row = el("tr");
    row.dataset.version = v.number;
    const number = el("td", `v${v.number}`);
    if (v.active) number.append(el("span", "active", "badge active"));
    if (v.shadow) number.append(el("span", "shadow", "badge shadow"));
    row.append(number, el("td", v.state), el("td", v.author), el("td", v.reason),
      el("td", v.created_at.replace("T", " ").slice(0, 19)), el("td", v.approved_by || ""));
    const actions = el("td", null, "actions-cell");
    actions.append(button("View", () => viewVersion(v.number), "view"));
    if (!v.active) actions.append(button("Diff", () => diffVersion(v.number), "diff"));
    actions.append(button("Dry-run", () => dryRun({ version: v.number }, `v${v.number}`), "dry-run"));
    if (v.state === "proposed") {
      actions.append(button("Approve", () => step(`approve v${v.number}`, async () => {
        await api("POST", `/${scope}/versions/${v.number}/approve`);
        return `v${v.number} approved`;
      }), "approve"));
    }
    if (v.state === "approved" && !v.active && !v.activated_at) {
      actions.append(button("Activate", () => step(`activate v${v.number}`, async () => {
        await api("POST", `/${scope}/versions/${v.number}/activate`, { reason: "" });
        return `v${v.number} is now enforced`;
      }), "activate"));
    }
    if (!v.active && v.activated_at) {
      actions.append(button("Roll back to", () => step(`roll back to v${v.number}`, async () => {
        await api("POST", `/${scope}/rollback`, { version: v.number, reason: "console" });
        return `rolled back to v${v.number}`;
      }), "rollback-to"));
    }
    if (!v.active) {
      if (v.shadow) {
        actions.append(button("Shadow report", () => shadowReport(v.number), "shadow-report"));
        actions.append(button("Stop shadow", () => step("stop shadow", async () => {
          await api("DELETE", `/${scope}/shadow`);
          return "shadow stopped";
        }), "shadow-stop"));
      } else {
        actions.append(button("Shadow", () => step(`shadow v${v.number}`, async () => {
          await api("POST", `/${scope}/shadow`, { version: v.number });
          return `v${v.number} runs in shadow on live traffic`;
        }), "shadow"));
      }
    }
    row.append(actions);
    body.append(row);
  }
}

async function viewVersion(number) {
  const version = await api("GET", `/${scope}/versions/${number}`);
  $("yaml").value = version.text;
  $("editing").textContent = `(from v${number})`;
  scheduleValidate();
}

// -- editing and validation ------------------------------------------------------------------

function scheduleValidate() {
  clearTimeout(validateTimer);
  validateTimer = setTimeout(validate, 400);
}

async function validate() {
  const list = $("issues");
  try {
    const result = await api("POST", "/validate", { yaml: $("yaml").value, scope });
    showIssues(result.valid ? [] : result.issues, result.revision);
    return result.valid;
  } catch (error) {
    list.replaceChildren(el("li", error.message));
    return false;
  }
}

function showIssues(issues, revision) {
  const list = $("issues");
  list.replaceChildren();
  if (!issues.length) {
    list.append(el("li", `valid${revision ? ` (revision ${revision})` : ""}`, "ok"));
    return;
  }
  for (const issue of issues) {
    const where = issue.line ? `line ${issue.line}${issue.column ? `:${issue.column}` : ""}` : "";
    const item = el("li", `${where} ${issue.path ? issue.path + ": " : ""}${issue.message}`);
    item.dataset.line = issue.line || "";
    item.addEventListener("click", () => goToLine(issue.line));
    list.append(item);
  }
}

function goToLine(line) {
  if (!line) return;
  const area = $("yaml");
  const lines = area.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + (lines[line - 1] || "").length);
}

async function propose() {
  const reason = $("reason").value.trim();
  if (!reason) {
    status("propose: give a reason (what changes and why)", true);
    return;
  }
  try {
    const version = await api("POST", `/${scope}/propose`, { yaml: $("yaml").value, reason });
    status(`proposed v${version.number}; a policy approver other than you must approve it`);
    $("reason").value = "";
    await loadHistory();
  } catch (error) {
    if (error.data && error.data.error && error.data.error.issues) {
      showIssues(error.data.error.issues);
    }
    status(`propose: ${error.message.split("\n")[0]}`, true);
  }
}

// -- diff and reports ------------------------------------------------------------------------

function showDiff(title, changes) {
  $("diff-title").textContent = title;
  const list = $("diff");
  list.replaceChildren();
  if (!changes.length) list.append(el("li", "no semantic difference"));
  for (const change of changes) list.append(el("li", `[${change.kind}] ${change.summary}`));
}

async function diffVersion(number) {
  try {
    const data = await api("POST", `/${scope}/diff`, { to_version: number });
    showDiff(`${data.from} → ${data.to}`, data.changes);
  } catch (error) {
    status(`diff: ${error.message}`, true);
  }
}

async function diffEdited() {
  try {
    const data = await api("POST", `/${scope}/diff`, { yaml: $("yaml").value });
    showDiff(`${data.from} → edited text`, data.changes);
  } catch (error) {
    if (error.data && error.data.error && error.data.error.issues) showIssues(error.data.error.issues);
    status(`diff: ${error.message.split("\n")[0]}`, true);
  }
}

function showReport(title, report) {
  $("report-title").textContent = title;
  const summary = $("report-summary");
  summary.replaceChildren();
  const add = (term, value) => summary.append(el("dt", term), el("dd", value));
  add("evaluated", report.evaluated);
  add("would change", report.changed);
  for (const [transition, count] of Object.entries(report.by_transition)) add(transition, count);
  for (const [category, count] of Object.entries(report.by_category)) add(`category ${category}`, count);
  const body = $("report-examples").querySelector("tbody");
  body.replaceChildren();
  for (const example of report.examples) {
    const row = el("tr");
    row.append(el("td", example.decision_id.slice(0, 16)), el("td", example.route),
      el("td", example.enforced), el("td", example.candidate),
      el("td", example.categories.join(", ")), el("td", example.prompt || "(not kept)"));
    body.append(row);
  }
}

async function dryRun(body, label) {
  try {
    const report = await api("POST", `/${scope}/dry-run`, { ...body, limit: 500 });
    showReport(`Dry-run of ${label} on the last 500 decisions`, report);
  } catch (error) {
    status(`dry-run: ${error.message.split("\n")[0]}`, true);
  }
}

async function shadowReport(number) {
  try {
    const report = await api("GET", `/${scope}/shadow/report?version=${number}`);
    showReport(`Shadow report of v${number} (live traffic)`, report);
  } catch (error) {
    status(`shadow report: ${error.message}`, true);
  }
}

// -- sign-in ---------------------------------------------------------------------------------

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    await loadScopes();
    await loadHistory();
    if (history.active) await viewVersion(history.active);
  } catch (error) {
    sessionStorage.removeItem(KEY);
    $("login-error").textContent = error.status === 401 || error.status === 403
      ? `not allowed: ${error.message}` : error.message;
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = `signed in · key ${key.split("_")[1] || ""}`;
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("api-key").value.trim());
});
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  location.reload();
});
$("scope").addEventListener("change", async (event) => {
  scope = event.target.value;
  await loadHistory();
  if (history.active) await viewVersion(history.active);
});
$("yaml").addEventListener("input", scheduleValidate);
$("validate").addEventListener("click", validate);
$("propose").addEventListener("click", propose);
$("diff-edit").addEventListener("click", diffEdited);
$("dry-run-edit").addEventListener("click", () => dryRun({ yaml: $("yaml").value }, "edited text"));
$("rollback").addEventListener("click", () => step("rollback", async () => {
  const version = await api("POST", `/${scope}/rollback`, { reason: "console rollback" });
  return `rolled back to v${version.number}`;
}));

if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
