// GenGuard audit explorer: plain JS, no build step. Talks to /admin/audit/* with the key kept in
// sessionStorage. Everything from the API is inserted as text (textContent), never as HTML.
"use strict";

const KEY = "genguard.apiKey";
const COLORS = { allow: "#2e8b57", flag: "#d08a00", review: "#d08a00", blur: "#e0a030",
                 block: "#c0392b", error: "#7b4fa0" };
const $ = (selector) => document.querySelector(selector);
let nextCursor = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}
function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

async function api(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const response = await fetch(`${path}?${query}`, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` },
  });
  if (!response.ok) {
    let message = `${response.status}`;
    try { message = (await response.json()).error.message; } catch (_) { /* not JSON */ }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return response;
}

function filters() {
  const data = Object.fromEntries(new FormData($("#filters")).entries());
  for (const name of ["since", "until"]) {
    if (data[name]) data[name] = `${data[name]}:00Z`;
  }
  return data;
}

function setStatus(text, isError = false) {
  $("#status").textContent = text;
  $("#status").className = isError ? "error" : "";
}

function categories(record) {
  return [...new Set(record.decision.reasons.map((r) => r.category))].join(", ");
}

function row(record) {
  const action = record.decision.action;
  const tr = el("tr", { "data-decision-id": record.decision_id },
    el("td", { class: "mono" }, record.timestamp.replace("T", " ").slice(0, 19)),
    el("td", {}, el("span", { class: `badge ${action}` }, action)),
    el("td", {}, categories(record)),
    el("td", {}, record.route),
    el("td", { class: "mono" }, record.key_id ?? ""),
    el("td", { class: "mono" }, record.policy.revision.slice(0, 19)),
    el("td", { class: "mono" }, record.decision_id));
  tr.addEventListener("click", () => showDetail(record));
  return tr;
}

async function search(append = false) {
  const params = filters();
  if (append && nextCursor) params.cursor = nextCursor;
  setStatus("Searching…");
  try {
    const page = await (await api("/admin/audit/query", params)).json();
    const body = $("#records tbody");
    if (!append) body.replaceChildren();
    for (const record of page.records) body.append(row(record));
    nextCursor = page.next_cursor;
    $("#more").hidden = !nextCursor;
    setStatus(`${body.children.length} record(s) of tenant ${page.tenant}${nextCursor ? " (more)" : ""}`);
    if (!append) await charts(params);
  } catch (error) {
    handle(error);
  }
}

function handle(error) {
  if (error.status === 401) { signOut(error.message); return; }
  setStatus(error.message, true);
}

function dl(pairs) {
  const list = el("dl");
  for (const [name, value] of pairs) list.append(el("dt", {}, name), el("dd", { class: "mono" }, value ?? "–"));
  return list;
}

function table(headers, rows) {
  const t = el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))));
  const body = el("tbody");
  for (const cells of rows) body.append(el("tr", {}, ...cells.map((c) => el("td", { class: "mono" }, c))));
  t.append(body);
  return t;
}

function showDetail(record) {
  const detail = $("#detail");
  const scores = (s) => Object.entries(s.scores).map(([k, v]) => `${k}=${v}`).join(" ");
  detail.replaceChildren(
    el("h2", {}, `Decision ${record.decision_id}`),
    dl([
      ["time", record.timestamp], ["tenant", record.tenant], ["API key", record.key_id],
      ["route", record.route], ["decision", record.decision.action],
      ["policy", `${record.policy.id} @ ${record.policy.revision}`],
      ["shadow", record.shadow ? `${record.shadow.revision}: ${record.shadow.action}` : null],
      ["prompt (" + record.input.prompt_mode + ")", record.input.prompt],
      ["prompt sha256", record.input.prompt_sha256],
      ["params", JSON.stringify(record.input.params)],
      ["erased", record.erased.join(", ")],
      ["error", record.error ? `${record.error.status} ${record.error.code}: ${record.error.message}` : null],
      ["total / overhead", `${record.metrics.total_ms} ms / ${record.metrics.overhead_ms} ms`],
      ["hash", record.hash], ["prev_hash", record.prev_hash],
    ]),
    el("h3", {}, "Reasons"),
    table(["stage", "category", "score", "threshold", "rule"],
      record.decision.reasons.map((r) => [r.stage, r.category, r.score, r.threshold, r.rule])),
    el("h3", {}, "Stages"),
    table(["stage", "classifier", "verdict", "latency ms", "scores", "error"],
      record.stages.map((s) => [s.stage, s.classifier ?? "", s.verdict, s.latency_ms, scores(s), s.error ?? ""])),
    el("h3", {}, "Outputs and provenance"),
    table(["mime type", "sha256", "pdq", "watermark id", "C2PA manifest"],
      record.outputs.map((o) => [o.mime_type, o.sha256, o.pdq ?? "", o.watermark_id ?? "", o.c2pa_manifest_id ?? ""])),
  );
  detail.hidden = false;
  detail.scrollIntoView({ block: "nearest" });
}

function legend(names) {
  const box = el("div", { class: "legend" });
  for (const name of names) {
    const swatch = el("i"); swatch.style.background = COLORS[name] ?? "#6b7b8c";
    box.append(el("span", {}, swatch, name));
  }
  return box;
}

async function charts(params) {
  const until = params.until ? new Date(params.until) : new Date();
  const since = params.since ? new Date(params.since) : new Date(until.getTime() - 24 * 3600e3);
  const stats = await (await api("/admin/audit/stats", {
    tenant: params.tenant, since: since.toISOString(), until: until.toISOString(), bucket: "hour",
  })).json();
  drawDecisions(stats.buckets);
  drawCategories(stats.buckets);
}

function drawDecisions(buckets) {
  const width = 720, height = 180, pad = 24;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                             "aria-label": "decisions per hour" });
  const totals = buckets.map((b) => Object.values(b.decisions).reduce((a, n) => a + n, 0));
  const top = Math.max(1, ...totals);
  const barWidth = Math.max(4, (width - 2 * pad) / Math.max(buckets.length, 1) - 2);
  const names = new Set();
  buckets.forEach((bucket, i) => {
    let y = height - pad;
    const x = pad + i * (barWidth + 2);
    for (const [name, count] of Object.entries(bucket.decisions).sort()) {
      names.add(name);
      const h = (count / top) * (height - 2 * pad);
      y -= h;
      const rect = svg("rect", { x, y, width: barWidth, height: h, fill: COLORS[name] ?? "#6b7b8c" });
      rect.append(Object.assign(svg("title"), { textContent: `${bucket.start} ${name}: ${count}` }));
      chart.append(rect);
    }
    if (i % Math.ceil(buckets.length / 8 || 1) === 0) {
      chart.append(Object.assign(svg("text", { x, y: height - 8 }), { textContent: bucket.start.slice(11, 16) }));
    }
  });
  chart.append(Object.assign(svg("text", { x: 2, y: pad - 8 }), { textContent: `max ${top}/h` }));
  if (!buckets.length) {
    chart.append(Object.assign(svg("text", { x: width / 2 - 40, y: height / 2 }), { textContent: "no records in range" }));
  }
  $("#chart-decisions").replaceChildren(chart, legend([...names].sort()));
}

function drawCategories(buckets) {
  const totals = {};
  for (const bucket of buckets) {
    for (const [name, count] of Object.entries(bucket.categories)) totals[name] = (totals[name] ?? 0) + count;
  }
  const entries = Object.entries(totals).sort((a, b) => b[1] - a[1]).slice(0, 8);
  const width = 360, rowHeight = 20, height = Math.max(40, entries.length * rowHeight + 10);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
                             "aria-label": "categories" });
  const top = Math.max(1, ...entries.map(([, n]) => n));
  entries.forEach(([name, count], i) => {
    const y = 5 + i * rowHeight;
    chart.append(Object.assign(svg("text", { x: 0, y: y + 12 }), { textContent: name }));
    chart.append(svg("rect", { x: 130, y, width: (count / top) * (width - 170), height: 14, fill: "#1f5fbf" }));
    chart.append(Object.assign(svg("text", { x: 134 + (count / top) * (width - 170), y: y + 12 }), { textContent: count }));
  });
  if (!entries.length) chart.append(Object.assign(svg("text", { x: 10, y: 24 }), { textContent: "no categories in range" }));
  $("#chart-categories").replaceChildren(chart);
}

async function download(format) {
  try {
    const response = await api("/admin/audit/export", { ...filters(), format });
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `audit.${format}` });
    document.body.append(link); link.click(); link.remove();
    URL.revokeObjectURL(url);
  } catch (error) { handle(error); }
}

async function verifyChain() {
  try {
    const report = await (await api("/admin/audit/verify-chain", { tenant: filters().tenant })).json();
    const first = report.problems[0];
    setStatus(report.ok ? `Chain of ${report.tenant} verified: ${report.records_checked} records, intact.`
      : `Chain of ${report.tenant} BROKEN: ${first.kind} at ${first.entry_id} (${report.problems.length} problem(s))`,
      !report.ok);
  } catch (error) { handle(error); }
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY);
  $("#explorer").hidden = true;
  $("#login").hidden = false;
  $("#who").textContent = "";
  $("#login-error").textContent = message;
}

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    await api("/admin/audit/query", { limit: 1 });
  } catch (error) {
    signOut(error.message);
    return;
  }
  $("#login").hidden = true;
  $("#explorer").hidden = false;
  $("#who").textContent = `key ${key.split("_")[1] ?? ""}`;
  await search();
}

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("#api-key").value.trim());
  $("#api-key").value = "";
});
$("#filters").addEventListener("submit", (event) => { event.preventDefault(); search(); });
$("#more").addEventListener("click", () => search(true));
$("#export-jsonl").addEventListener("click", () => download("jsonl"));
$("#export-csv").addEventListener("click", () => download("csv"));
$("#verify").addEventListener("click", verifyChain);
$("#logout").addEventListener("click", () => signOut());
if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));
