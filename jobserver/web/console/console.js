// The web console: the REST API in a page. No framework, no build step; every value is put in
// the page as text (never as HTML).
"use strict";

const FINAL = new Set(["FINISHED", "ERROR", "KILLED"]);
const BINARY_TYPES = {
  whl: "application/python-wheel", egg: "application/python-egg", zip: "application/python-archive",
  jar: "application/java-archive", py: "text/x-python",
};
const $ = (id) => document.getElementById(id);
const state = { view: "contexts", page: 0, jobId: null, timer: null };

function credentials() { return sessionStorage.getItem("authorization"); }

async function api(method, path, body, contentType) {
  const headers = { "X-Requested-With": "XMLHttpRequest" };  // no browser password dialog on a 401
  if (credentials()) headers.Authorization = credentials();
  if (contentType) headers["Content-Type"] = contentType;
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  const value = response.headers.get("Content-Type")?.startsWith("application/json") && text ? JSON.parse(text) : text;
  if (response.status === 401) {
    $("login").hidden = false;
    throw new Error("Log in to use the job server");
  }
  if (!response.ok) {
    const result = value && value.result;
    const message = typeof result === "object" && result ? result.message : result || value || response.statusText;
    throw new Error(`${response.status} ${value.status || ""}: ${message}`);
  }
  return value;
}

function say(text, isError) {
  $("message").textContent = text || "";
  $("message").className = isError ? "error" : "";
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (className) td.className = className;
  return td;
}

function button(td, label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = label;
  element.addEventListener("click", async (event) => {
    event.stopPropagation();
    try { await onClick(); } catch (error) { say(error.message, true); }
  });
  td.appendChild(element);
  return element;
}

// Contexts

async function showContexts() {
  const names = await api("GET", "/contexts");
  const contexts = await Promise.all(names.map((name) => api("GET", `/contexts/${encodeURIComponent(name)}`)));
  const rows = $("context-rows");
  rows.replaceChildren();
  for (const context of contexts) {
    const row = rows.insertRow();
    row.dataset.name = context.name;
    cell(row, context.name);
    cell(row, context.state, `state-${context.state}`);
    cell(row, context.startTime);
    cell(row, context.applicationId);
    button(row.insertCell(), "Stop", async () => {
      say(`Stopping ${context.name}…`);
      await api("DELETE", `/contexts/${encodeURIComponent(context.name)}`);
      say(`Context ${context.name} stopped`);
      await refresh();
    });
  }
}

$("start-context").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const name = form.name.value.trim();
  const query = form.settings.value.trim();
  say(`Starting ${name}…`);
  try {
    await api("POST", `/contexts/${encodeURIComponent(name)}${query ? "?" + query : ""}`);
    say(`Context ${name} started`);
    form.reset();
    await refresh();
  } catch (error) { say(error.message, true); }
});

// Jobs

async function showJobs() {
  const form = $("job-filter");
  const size = Number(form.size.value);
  const status = form.status.value;
  const query = new URLSearchParams({ limit: String((state.page + 1) * size + 1) });
  if (status) query.set("status", status);
  const jobs = await api("GET", `/jobs?${query}`);
  const page = jobs.slice(state.page * size, (state.page + 1) * size);
  $("older").disabled = jobs.length <= (state.page + 1) * size;
  $("newer").disabled = state.page === 0;
  $("page").textContent = `page ${state.page + 1}`;
  const rows = $("job-rows");
  rows.replaceChildren();
  for (const job of page) {
    const row = rows.insertRow();
    row.dataset.jobId = job.jobId;
    if (job.jobId === state.jobId) row.className = "selected";
    row.addEventListener("click", () => openJob(job.jobId));
    cell(row, job.jobId);
    cell(row, job.status, `state-${job.status}`);
    cell(row, job.context);
    cell(row, job.classPath);
    cell(row, job.startTime);
    cell(row, job.duration);
    const actions = row.insertCell();
    if (!FINAL.has(job.status)) button(actions, "Kill", () => killJob(job.jobId));
  }
  if (state.jobId) await showJob();
}

async function killJob(jobId) {
  const answer = await api("DELETE", `/jobs/${encodeURIComponent(jobId)}`);
  say(`Job ${jobId}: ${answer.status}`);
  await refresh();
}

async function openJob(jobId) {
  state.jobId = jobId;
  $("job").hidden = false;
  $("job-log").textContent = "";
  $("job-config").textContent = JSON.stringify(await api("GET", `/jobs/${encodeURIComponent(jobId)}/config`), null, 2);
  await refresh();
}

function renderProgress(progress) {
  const box = $("job-progress");
  box.replaceChildren();
  if (!progress) return;
  const tasks = progress.tasks || {};
  if (typeof tasks.total === "number" && tasks.total > 0) {
    const bar = document.createElement("progress");
    bar.max = tasks.total;
    bar.value = tasks.completed || 0;
    box.appendChild(bar);
  }
  const text = document.createElement("p");
  text.className = "progress-text";
  const part = (name, counts) => counts
    ? `${name} ${counts.completed}/${counts.total} (${counts.active} running, ${counts.failed} failed)` : "";
  text.textContent = [part("Spark jobs", progress.jobs), part("stages", progress.stages), part("tasks", progress.tasks)]
    .filter(Boolean).join(" · ");
  box.appendChild(text);
}

async function showJob() {
  const jobId = state.jobId;
  const report = await api("GET", `/jobs/${encodeURIComponent(jobId)}`);
  $("job-id").textContent = jobId;
  $("job-status").textContent = report.status;
  $("job-status").className = `state-${report.status}`;
  $("kill-job").hidden = FINAL.has(report.status);
  renderProgress(report.progress);
  const failed = report.status === "ERROR" || report.status === "KILLED";
  $("job-outcome-title").textContent = failed ? "Error" : "Result";
  $("job-outcome").textContent = "result" in report ? JSON.stringify(report.result, null, 2) : "";
  try {
    const logs = await api("GET", `/jobs/${encodeURIComponent(jobId)}/logs`);
    $("job-log").textContent = (logs.log || []).join("\n");
  } catch (error) {
    $("job-log").textContent = "";  // no log (yet) for this job
  }
}

$("kill-job").addEventListener("click", async () => {
  try { await killJob(state.jobId); } catch (error) { say(error.message, true); }
});

$("submit-job").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const query = new URLSearchParams();
  for (const name of ["classPath", "appName", "context", "sql"]) {
    if (form[name].value.trim()) query.set(name, form[name].value.trim());
  }
  try {
    const report = await api("POST", `/jobs?${query}`, form.config.value, "text/plain");
    say(`Job ${report.jobId} submitted`);
    await openJob(report.jobId);
  } catch (error) { say(error.message, true); }
});

$("job-filter").addEventListener("change", () => { state.page = 0; refresh(); });
$("older").addEventListener("click", () => { state.page += 1; refresh(); });
$("newer").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); refresh(); });

// Binaries and data files

async function showBinaries() {
  const binaries = await api("GET", "/binaries");
  const rows = $("binary-rows");
  rows.replaceChildren();
  for (const [name, info] of Object.entries(binaries).sort()) {
    const row = rows.insertRow();
    row.dataset.name = name;
    cell(row, name);
    cell(row, info["binary-type"]);
    cell(row, info["upload-time"]);
    button(row.insertCell(), "Delete", async () => {
      await api("DELETE", `/binaries/${encodeURIComponent(name)}`);
      say(`Binary ${name} deleted`);
      await refresh();
    });
  }
}

$("upload-binary").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const file = form.file.files[0];
  const type = BINARY_TYPES[file.name.split(".").pop().toLowerCase()];
  try {
    if (!type) throw new Error(`${file.name}: not a wheel, egg, zip, jar or .py`);
    await api("POST", `/binaries/${encodeURIComponent(form.name.value.trim())}`, file, type);
    say(`Binary ${form.name.value.trim()} uploaded`);
    form.reset();
    await refresh();
  } catch (error) { say(error.message, true); }
});

async function showData() {
  const files = await api("GET", "/data");
  const rows = $("data-rows");
  rows.replaceChildren();
  for (const name of files) {
    const row = rows.insertRow();
    row.dataset.name = name;
    cell(row, name);
    button(row.insertCell(), "Delete", async () => {
      await api("DELETE", `/data/${encodeURIComponent(name)}`);
      say(`${name} deleted`);
      await refresh();
    });
  }
}

$("upload-data").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = event.target.file.files[0];
  try {
    const answer = await api("POST", `/data/${encodeURIComponent(file.name)}`, file, "application/octet-stream");
    say(`Stored as ${answer.result.filename}`);
    event.target.reset();
    await refresh();
  } catch (error) { say(error.message, true); }
});

// Views, log-in, refresh

const VIEWS = { contexts: showContexts, jobs: showJobs, binaries: showBinaries, data: showData };

async function refresh() {
  try {
    await VIEWS[state.view]();
  } catch (error) { say(error.message, true); }
}

function show(view) {
  state.view = VIEWS[view] ? view : "contexts";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== state.view;
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    link.classList.toggle("active", link.dataset.view === state.view);
  }
  refresh();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const token = form.token.value.trim();
  const header = token ? `Bearer ${token}` : `Basic ${btoa(`${form.user.value}:${form.password.value}`)}`;
  sessionStorage.setItem("authorization", header);
  $("who").textContent = token ? "token" : form.user.value;
  form.hidden = true;
  say("");
  refresh();
});

window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1));
state.timer = setInterval(refresh, 1000);
