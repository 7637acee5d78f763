// The Dossier console: plain JavaScript, no framework, no build step (docs/console.md).
//
// Every page is drawn from the public API with the caller's headers, as any client would call
// it; the console has no endpoint of its own. Pages are hash routes (#/jobs/3) so a reload or a
// shared link lands on the same page, and the server serves one HTML file for all of them.
// Elements are built with `h` rather than from HTML strings: names and ids come from users, and
// text nodes cannot inject markup.
"use strict";

const SESSION_KEY = "dossier.session";
const JOBS = "/data/core/ups/export/jobs";
const PROFILE_UNION = "https://ns.adobe.com/xdm/context/profile__union";
const JOB_POLL_MS = 1000;
const LIST_POLL_MS = 1500;
const SEGMENT_POLL_MS = 2000;

// ---- session -------------------------------------------------------------------------------

// The token lives in sessionStorage: it survives a reload of the tab but not the tab itself,
// and no other tab or site sees it.
function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    return s && s.expiresAt > Date.now() ? s : null;
  } catch (_) {
    return null;
  }
}

function saveSession(s) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

// Back to the sign-in form, on the same hash: signing in again returns to the page.
function signOut(message) {
  sessionStorage.removeItem(SESSION_KEY);
  signInMessage = message || "";
  render();
}

let signInMessage = "";

// ---- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// The message of any error body the server answers: AEP's service shapes (errors[status][0],
// detail, title), the gateway's ({error_code, message}) and IMS's ({error_description}).
function errorMessage(status, body) {
  if (body && typeof body === "object") {
    const first = body.errors && body.errors[String(status)] && body.errors[String(status)][0];
    if (first && first.message) return `${first.code ? first.code + ": " : ""}${first.message}`;
    if (body.error_description) return body.error_description;
    if (body.message) return `${body.error_code ? body.error_code + ": " : ""}${body.message}`;
    if (body.detail) return body.detail;
    if (body.title) return body.title;
  }
  return `HTTP ${status}`;
}

function authHeaders(s) {
  return {
    Authorization: `Bearer ${s.token}`,
    "x-api-key": s.clientId,
    "x-gw-ims-org-id": s.org,
    "x-sandbox-name": s.sandbox,
  };
}

async function api(path, options = {}) {
  const s = session();
  if (!s) {
    signOut("Your session has ended; sign in again.");
    throw new ApiError(401, "not signed in", null);
  }
  const headers = Object.assign(authHeaders(s), options.headers || {});
  let body = options.body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { method: options.method || "GET", headers, body });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (_) {
    parsed = text;
  }
  if (response.status === 401) {
    signOut(`The server refused the token (${errorMessage(401, parsed)}); sign in again.`);
  }
  if (!response.ok) throw new ApiError(response.status, errorMessage(response.status, parsed), parsed);
  return parsed;
}

// ---- drawing -------------------------------------------------------------------------------

// A form's control by name. Never `form.name`: a control named like a property of the form
// element (dataset, action, ...) would be shadowed by it.
function input(form, name) {
  return form.elements.namedItem(name);
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function table(id, headings, rows, empty) {
  if (!rows.length) return h("p", { id: `${id}-empty`, class: "muted" }, empty);
  return h(
    "table",
    { id },
    h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows),
  );
}

function formatTime(ms) {
  if (ms === undefined || ms === null || ms === "") return "";
  const d = new Date(Number(ms));
  return isNaN(d) ? String(ms) : d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

function formatBytes(n) {
  if (n === undefined || n === null || n === "") return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function formatCount(n) {
  return n === undefined || n === null ? "" : Number(n).toLocaleString("en-US");
}

function badge(status) {
  const text = String(status || "");
  return h("span", { class: `badge ${text.toLowerCase()}` }, text);
}

function progressBar(percent) {
  const p = Math.max(0, Math.min(100, Number(percent) || 0));
  const bar = h("span", { class: "bar" });
  // Through the CSSOM: the console's Content-Security-Policy refuses style attributes.
  bar.style.width = `${p}%`;
  return h(
    "span",
    { class: "progress", role: "progressbar", "aria-valuenow": p, "aria-valuemin": 0, "aria-valuemax": 100 },
    bar,
    h("span", { class: "label" }, `${Math.round(p)}%`),
  );
}

function errorBox(id, error) {
  return h("p", { id, class: "error", role: "alert" }, error.message || String(error));
}

// ---- routing -------------------------------------------------------------------------------

// Each render bumps the generation; a page's pollers and late answers check it and stop once
// the user has moved on, so two pages never draw into one another.
let generation = 0;

function isCurrent(g) {
  return g === generation;
}

// Calls `step` now and every `ms` after it finishes (never two at once), while the page is
// current and `step` answers true. A failure is drawn into `holder`; a refusal (4xx: the job
// does not exist, the token is gone) stops the polling, anything else (the server restarting,
// the network) is tried again at the next tick.
function poll(g, ms, step, holder) {
  const run = async () => {
    if (!isCurrent(g)) return;
    let again = false;
    try {
      again = await step();
    } catch (e) {
      if (isCurrent(g) && e.status !== 401) holder.replaceChildren(errorBox("poll-error", e));
      again = !(e.status >= 400 && e.status < 500);
    }
    if (again && isCurrent(g)) setTimeout(run, ms);
  };
  run();
}

function route() {
  const hash = location.hash.replace(/^#/, "") || "/datasets";
  const [path, query] = hash.split("?");
  return { parts: path.split("/").filter(Boolean), query: new URLSearchParams(query || "") };
}

const PAGES = {
  "sign-in": signInPage,
  datasets: (parts) => (parts[1] ? datasetPage(parts[1]) : datasetsPage()),
  batches: (parts) => batchFilesPage(parts[1]),
  jobs: (parts, query, g) => (parts[1] ? jobPage(parts[1], g) : jobsPage(g)),
  segments: segmentsPage,
  schedules: schedulesPage,
  "new-export": newExportPage,
};

function render() {
  generation += 1;
  const g = generation;
  const { parts, query } = route();
  const s = session();
  const page = s ? parts[0] || "datasets" : "sign-in";
  drawHeader(s, page);
  const app = document.getElementById("app");
  app.replaceChildren();
  const draw = PAGES[page] || notFoundPage;
  Promise.resolve(draw(parts, query, g)).then(
    (content) => {
      if (isCurrent(g) && content) app.replaceChildren(content);
    },
    (e) => {
      if (isCurrent(g) && e.status !== 401) app.replaceChildren(errorBox("page-error", e));
    },
  );
}

function drawHeader(s, page) {
  document.getElementById("nav").hidden = !s;
  document.getElementById("sign-out").hidden = !s;
  document.getElementById("who").textContent = s ? `${s.org} · sandbox ${s.sandbox} · client ${s.clientId}` : "";
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
}

function notFoundPage(parts) {
  return h("p", { class: "error" }, `No console page '#/${parts.join("/")}'. Pick one in the menu above.`);
}

// ---- sign in -------------------------------------------------------------------------------

// The IMS flow of docs/auth.md: client credentials for a token, then one call with all four
// headers so a wrong organization or sandbox is said here rather than on the first page.
async function signIn(form) {
  const clientId = input(form, "clientId").value.trim();
  const secret = input(form, "clientSecret").value;
  const org = input(form, "org").value.trim();
  const sandbox = input(form, "sandbox").value.trim() || "prod";
  const response = await fetch("/ims/token/v3", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "client_credentials",
      client_id: clientId,
      client_secret: secret,
      scope: "openid,AdobeID,read_organizations",
    }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, errorMessage(response.status, body), body);
  saveSession({
    token: body.access_token,
    clientId,
    org,
    sandbox,
    expiresAt: Date.now() + Number(body.expires_in || 0) * 1000,
  });
  try {
    await api("/data/foundation/catalog/dataSets?limit=1");
  } catch (e) {
    sessionStorage.removeItem(SESSION_KEY);
    throw e;
  }
}

function signInPage(_parts, query) {
  const field = (label, name, attrs) =>
    h("label", {}, label, h("input", Object.assign({ name, id: `sign-in-${name}`, required: true }, attrs)));
  const error = h("p", { id: "sign-in-error", class: "error", role: "alert", hidden: !signInMessage }, signInMessage);
  signInMessage = "";
  const form = h(
    "form",
    { id: "sign-in", class: "card narrow" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "With an API client (dossier clients create --org ORG): its id and secret, for one sandbox."),
    field("Client id", "clientId", { value: query.get("clientId") || "", autocomplete: "username" }),
    field("Client secret", "clientSecret", { type: "password", autocomplete: "current-password" }),
    field("Organization", "org", { value: query.get("org") || "", placeholder: "1BD6382559DF0C130A49422D@AdobeOrg" }),
    field("Sandbox", "sandbox", { value: query.get("sandbox") || "prod" }),
    error,
    h("button", { id: "sign-in-button", type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    try {
      await signIn(form);
      const here = route().parts[0];
      if (here && here !== "sign-in") render();
      else location.hash = "#/datasets";
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });
  return form;
}

// ---- datasets and batches ------------------------------------------------------------------

function schemaName(dataset) {
  const id = (dataset.schemaRef && dataset.schemaRef.id) || "";
  return id.split("/").pop();
}

async function datasetsPage() {
  const datasets = await api("/data/foundation/catalog/dataSets?limit=100&orderBy=desc:created");
  const rows = Object.entries(datasets || {}).map(([id, d]) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `#/datasets/${id}` }, d.name)),
      h("td", { class: "mono" }, id),
      h("td", {}, schemaName(d)),
      h("td", {}, (d.classification && d.classification.dataBehavior) || ""),
      h("td", {}, d.lastBatchStatus ? badge(d.lastBatchStatus) : ""),
      h("td", {}, formatTime(d.created)),
    ),
  );
  return h(
    "section",
    {},
    h("h1", {}, "Datasets"),
    table("datasets-table", ["Name", "Id", "Schema", "Behavior", "Last batch", "Created"], rows, "No datasets in this sandbox yet."),
  );
}

async function datasetPage(id) {
  const [dataset, batches] = await Promise.all([
    api(`/data/foundation/catalog/dataSets/${encodeURIComponent(id)}`),
    api(`/data/foundation/catalog/batches?dataSet=${encodeURIComponent(id)}&limit=100&orderBy=desc:created`),
  ]);
  const d = dataset[id] || {};
  const rows = Object.entries(batches || {}).map(([batchId, b]) =>
    h(
      "tr",
      {},
      h("td", { class: "mono" }, b.status === "success" ? h("a", { href: `#/batches/${batchId}` }, batchId) : batchId),
      h("td", {}, badge(b.status)),
      h("td", {}, formatTime(b.created)),
      h("td", {}, formatTime(b.completed)),
      h("td", { class: "num" }, formatCount(b.recordCount)),
      h("td", { class: "num" }, formatBytes(b.size)),
    ),
  );
  return h(
    "section",
    {},
    h("p", {}, h("a", { href: "#/datasets" }, "← Datasets")),
    h("h1", {}, d.name || id),
    h("p", { class: "muted mono" }, `${id} · ${schemaName(d)}`),
    h("h2", {}, "Batches"),
    table("batches-table", ["Batch", "Status", "Created", "Completed", "Records", "Size"], rows, "No batches in this dataset yet."),
  );
}

async function batchFilesPage(batchId) {
  const batch = await api(`/data/foundation/catalog/batches/${encodeURIComponent(batchId)}`);
  const b = batch[batchId] || {};
  const dataset = ((b.relatedObjects || []).find((o) => o.type === "dataSet") || {}).id;
  return h(
    "section",
    {},
    dataset ? h("p", {}, h("a", { href: `#/datasets/${dataset}` }, "← Dataset")) : null,
    h("h1", {}, "Batch ", h("span", { class: "mono" }, batchId)),
    h("p", {}, badge(b.status), " ", formatCount(b.recordCount), " records"),
    await batchFiles(batchId),
    downloadStatus(),
  );
}

// ---- files and downloads -------------------------------------------------------------------

// A batch's files through the Data Access API: each dataSetFileId, then the names it holds.
async function batchFiles(batchId) {
  const listing = await api(`/data/foundation/export/batches/${encodeURIComponent(batchId)}/files?limit=100`);
  const rows = [];
  for (const file of listing.data || []) {
    const described = await api(`/data/foundation/export/files/${encodeURIComponent(file.dataSetFileId)}`);
    for (const part of described.data || []) {
      rows.push(
        h(
          "tr",
          {},
          h("td", { class: "mono" }, file.dataSetFileId),
          h("td", { class: "mono" }, part.name),
          h("td", { class: "num" }, formatCount(file.records)),
          h("td", { class: "num" }, formatBytes(part.length)),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                class: "download",
                "data-file": file.dataSetFileId,
                "data-name": part.name,
                onclick: () => download(file.dataSetFileId, part.name),
              },
              "Download",
            ),
          ),
        ),
      );
    }
  }
  return table(`files-${batchId}`, ["File", "Name", "Records", "Size", ""], rows, "This batch has no files.");
}

function downloadStatus() {
  return h("p", { id: "download-status", class: "muted", role: "status" });
}

// A link cannot carry the Authorization header, so the file is fetched with it and handed to
// the browser as a blob URL: the browser then saves it as any download.
async function download(fileId, name) {
  const status = document.getElementById("download-status");
  const say = (text) => status && (status.textContent = text);
  say(`Downloading ${name}…`);
  try {
    const s = session();
    if (!s) return signOut("Your session has ended; sign in again.");
    const path = `/data/foundation/export/files/${encodeURIComponent(fileId)}?path=${encodeURIComponent(name)}`;
    const response = await fetch(path, { headers: authHeaders(s) });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw new ApiError(response.status, errorMessage(response.status, body), body);
    }
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = h("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    say(`Downloaded ${name} (${formatCount(blob.size)} bytes).`);
  } catch (e) {
    say(`Download of ${name} failed: ${e.message}`);
  }
}

// ---- export jobs ---------------------------------------------------------------------------

function jobPercent(job) {
  if (job.status === "SUCCEEDED") return 100;
  return (job.progress && job.progress.percent) || 0;
}

function exportedCount(job) {
  const m = job.metrics || {};
  if (m.totalExportedProfileCounter !== undefined) return m.totalExportedProfileCounter;
  return job.progress ? job.progress.profilesExported : undefined;
}

function isRunning(job) {
  return job.status === "NEW" || job.status === "PROCESSING";
}

function jobRow(job) {
  return h(
    "tr",
    { "data-job": job.id },
    h("td", {}, h("a", { href: `#/jobs/${job.id}` }, `#${job.id}`)),
    h("td", {}, badge(job.status)),
    h("td", {}, progressBar(jobPercent(job))),
    h("td", { class: "num" }, formatCount(exportedCount(job))),
    h("td", { class: "mono" }, (job.destination && job.destination.datasetId) || ""),
    h("td", {}, formatTime(job.creationTime)),
  );
}

function jobsPage(g) {
  const holder = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  poll(g, LIST_POLL_MS, async () => {
    const page = await api(`${JOBS}?limit=50`);
    if (!isCurrent(g)) return false;
    const rows = (page.records || []).map(jobRow);
    holder.replaceChildren(
      table("jobs-table", ["Job", "Status", "Progress", "Profiles", "Dataset", "Created"], rows, "No export jobs yet."),
    );
    return true;
  }, holder);
  return h(
    "section",
    {},
    h("h1", {}, "Export jobs ", h("a", { class: "button", href: "#/new-export" }, "New export")),
    h("p", { class: "muted" }, `Refreshed every ${LIST_POLL_MS / 1000} s.`),
    holder,
  );
}

function timing(name, t) {
  return t && t.totalTimeInMs !== undefined ? h("li", {}, `${name}: ${formatCount(t.totalTimeInMs)} ms`) : null;
}

function jobSummary(job) {
  const p = job.progress || {};
  const m = job.metrics || {};
  return h(
    "div",
    { class: "card" },
    h("p", {}, "Status ", h("span", { id: "job-status" }, badge(job.status)), " ", progressBar(jobPercent(job))),
    job.status === "PROCESSING"
      ? h(
          "p",
          { id: "job-progress" },
          `${formatCount(p.profilesScanned)} profiles scanned, ${formatCount(p.profilesExported)} exported, ${formatBytes(p.bytesWritten)} written`,
        )
      : null,
    h(
      "ul",
      {},
      h("li", {}, "Created ", formatTime(job.creationTime)),
      h("li", {}, "Merge policy ", h("span", { class: "mono" }, `${(job.mergePolicy || {}).id} v${(job.mergePolicy || {}).version}`)),
      job.fields ? h("li", {}, "Fields ", h("span", { class: "mono" }, job.fields)) : null,
      m.totalExportedProfileCounter !== undefined
        ? h("li", { id: "job-exported" }, `${formatCount(m.totalExportedProfileCounter)} profiles exported`)
        : null,
      timing("Total time", m.totalTime),
      timing("Profile export", m.profileExportTime),
      timing("Dataset write", m.aCPDatasetWriteTime),
    ),
    (job.errors || []).length
      ? h("ul", { id: "job-errors", class: "error" }, job.errors.map((e) => h("li", {}, `${e.code}: ${e.msg} (${e.callStack})`)))
      : null,
  );
}

// The job's batches: one, or one per segment with segmentPerBatch.
function jobBatches(job) {
  const d = job.destination || {};
  if (d.batches) return d.batches.map((b) => ({ batchId: b.batchId, label: `${b.segmentNs}:${b.segmentId}` }));
  return d.batchId ? [{ batchId: d.batchId, label: "" }] : [];
}

async function jobFiles(job) {
  const sections = [];
  for (const b of jobBatches(job)) {
    sections.push(h("h3", {}, "Batch ", h("span", { class: "mono" }, b.batchId), b.label ? ` (${b.label})` : ""));
    sections.push(await batchFiles(b.batchId));
  }
  return h("div", { id: "job-files" }, h("h2", {}, "Files"), sections, downloadStatus());
}

function cancelButton(job) {
  return h(
    "button",
    {
      type: "button",
      id: "job-cancel",
      class: "secondary",
      onclick: async (event) => {
        event.target.disabled = true;
        await api(`${JOBS}/${job.id}`, { method: "DELETE" }).catch((e) => alert(e.message));
      },
    },
    "Cancel job",
  );
}

function jobPage(id, g) {
  const summary = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const actions = h("div", {});
  const files = h("div", {});
  const raw = h("pre", { id: "job-json", class: "json" });
  poll(g, JOB_POLL_MS, async () => {
    const job = await api(`${JOBS}/${encodeURIComponent(id)}`);
    if (!isCurrent(g)) return false;
    summary.replaceChildren(jobSummary(job));
    raw.textContent = JSON.stringify(job, null, 2);
    actions.replaceChildren(isRunning(job) ? cancelButton(job) : "");
    if (isRunning(job)) return true;
    if (job.status === "SUCCEEDED") files.replaceChildren(await jobFiles(job));
    return false;
  }, summary);
  return h(
    "section",
    {},
    h("p", {}, h("a", { href: "#/jobs" }, "← Export jobs")),
    h("h1", {}, `Export job #${id}`),
    summary,
    actions,
    files,
    h("details", {}, h("summary", {}, "The job as the API answers it"), raw),
  );
}

// ---- segments ------------------------------------------------------------------------------

// The newest finished evaluation of each definition: segment jobs come newest first, and each
// SUCCEEDED one counts its definitions' current members in segmentedProfileCounter.
function latestCounts(jobs) {
  const latest = {};
  for (const job of jobs) {
    if (job.status !== "SUCCEEDED") continue;
    const counter = (job.metrics && job.metrics.segmentedProfileCounter) || {};
    for (const [id, count] of Object.entries(counter)) {
      if (!(id in latest)) latest[id] = { count, at: job.metrics.totalTime && job.metrics.totalTime.startTimeInMs };
    }
  }
  return latest;
}

function evaluateButton(definition, onQueued) {
  return h(
    "button",
    {
      type: "button",
      class: "secondary small",
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await api("/data/core/ups/segment/jobs", { method: "POST", json: [{ segmentId: definition.id }] });
          onQueued();
        } catch (e) {
          alert(e.message);
          event.target.disabled = false;
        }
      },
    },
    "Evaluate",
  );
}

function segmentsPage(_parts, _query, g) {
  const holder = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const refresh = () => poll(g, SEGMENT_POLL_MS, step, holder);
  const step = async () => {
    const [definitions, jobs] = await Promise.all([
      api("/data/core/ups/segment/definitions?limit=100"),
      api("/data/core/ups/segment/jobs?limit=100"),
    ]);
    if (!isCurrent(g)) return false;
    const children = jobs.children || [];
    const latest = latestCounts(children);
    const rows = (definitions.segments || []).map((d) =>
      h(
        "tr",
        { "data-segment": d.id },
        h("td", {}, d.name),
        h("td", { class: "mono" }, d.id),
        h("td", { class: "mono pql" }, (d.expression && d.expression.value) || ""),
        h("td", { class: "num segment-count" }, latest[d.id] ? formatCount(latest[d.id].count) : "not evaluated"),
        h("td", {}, latest[d.id] ? formatTime(latest[d.id].at) : ""),
        h("td", {}, evaluateButton(d, refresh)),
      ),
    );
    const running = children.filter(isRunning).length;
    holder.replaceChildren(
      running ? h("p", { class: "muted" }, `${running} evaluation(s) running…`) : "",
      table("segments-table", ["Name", "Id", "Expression (PQL)", "Members", "Evaluated", ""], rows, "No segment definitions in this sandbox yet."),
    );
    return running > 0;
  };
  refresh();
  return h(
    "section",
    {},
    h("h1", {}, "Segment definitions"),
    h("p", { class: "muted" }, "Members: the current members (realized and existing) at the latest evaluation."),
    holder,
  );
}

// ---- schedules -----------------------------------------------------------------------------

function scheduleWhat(s) {
  const p = s.properties || {};
  if (p.segments) return `segments ${p.segments.join(", ")}`;
  if (p.exportJob) return `export to ${(p.exportJob.destination || {}).datasetId || "?"}`;
  return "";
}

async function schedulesPage() {
  let listing;
  try {
    listing = await api("/data/core/ups/config/schedules?limit=100");
  } catch (e) {
    if (e.status !== 404 && e.status !== 405 && e.status !== 501) throw e;
    return h(
      "section",
      {},
      h("h1", {}, "Schedules"),
      h("p", { id: "schedules-unavailable", class: "muted" }, `This server has no schedules API: ${e.message}`),
    );
  }
  const items = Array.isArray(listing) ? listing : listing.children || listing.schedules || listing.records || [];
  const rows = items.map((s) =>
    h(
      "tr",
      {},
      h("td", {}, s.name || ""),
      h("td", { class: "mono" }, s.id || ""),
      h("td", {}, s.type || ""),
      h("td", {}, scheduleWhat(s)),
      h("td", { class: "mono" }, s.schedule || ""),
      h("td", {}, badge(s.state)),
      h("td", { class: "next-run" }, s.nextRunEpoch ? formatTime(s.nextRunEpoch * 1000) : ""),
    ),
  );
  return h(
    "section",
    {},
    h("h1", {}, "Schedules"),
    table("schedules-table", ["Name", "Id", "Type", "Runs", "Schedule (Quartz cron)", "State", "Next run"], rows, "No schedules in this sandbox yet."),
  );
}

// ---- a new export --------------------------------------------------------------------------

const STATUSES = ["realized", "existing", "exited"];

// The body the form describes, with only what the user chose: what the server fills in by
// default is left to it, as a hand-written request would.
function exportBody(form) {
  const body = {};
  const fields = input(form, "fields").value.trim();
  if (fields) body.fields = fields;
  const policy = input(form, "mergePolicy").value;
  if (policy) body.mergePolicy = JSON.parse(policy);
  const statuses = STATUSES.filter((s) => form.querySelector(`input[name=status][value=${s}]`).checked);
  const chosen = [...form.querySelectorAll("input[name=segment]:checked")].map((i) => ({ segmentId: i.value, segmentNs: "ups" }));
  const others = input(form, "otherSegments").value
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => {
      const [ns, id] = v.includes(":") ? v.split(/:(.*)/s) : ["ups", v];
      return { segmentId: id, segmentNs: ns };
    });
  const segments = chosen.concat(others).map((s) => Object.assign(s, { status: statuses }));
  body.filter = {};
  if (segments.length) body.filter.segments = segments;
  body.filter.emptyProfiles = input(form, "emptyProfiles").checked;
  body.destination = { datasetId: input(form, "datasetId").value };
  if (input(form, "segmentPerBatch").checked) body.destination.segmentPerBatch = true;
  body.schema = { name: "_xdm.context.profile" };
  if (input(form, "evaluate").checked) body.evaluationInfo = { segmentation: true };
  return body;
}

function checkbox(name, label, attrs) {
  return h("label", { class: "check" }, h("input", Object.assign({ type: "checkbox", name }, attrs)), " ", label);
}

async function createExportDataset() {
  await api("/data/foundation/catalog/dataSets", {
    method: "POST",
    json: {
      name: "Profile Data Export",
      schemaRef: { id: PROFILE_UNION, contentType: "application/vnd.adobe.xed+json;version=1" },
      fileDescription: { persisted: true, containerFormat: "parquet", format: "parquet" },
      aspect: "production",
    },
  });
  render();
}

// The export form's choices: destination, fields, segments and statuses, merge policy, options.
function exportChoices(targets, policies, definitions) {
  return h(
    "div",
    { class: "choices" },
    h(
      "label",
      {},
      "Destination dataset",
      h("select", { name: "datasetId", id: "export-dataset" }, targets.map(([id, d]) => h("option", { value: id }, `${d.name} (${id})`))),
    ),
    h(
      "label",
      {},
      "Fields (comma-separated dot paths; empty for every attribute)",
      h("input", { name: "fields", id: "export-fields", placeholder: "personalEmail.address, identityMap", autocomplete: "off" }),
    ),
    h(
      "fieldset",
      { id: "export-segments" },
      h("legend", {}, "Segments (none: every profile)"),
      (definitions.segments || []).map((d) => checkbox("segment", `${d.name} (${d.id})`, { value: d.id })),
      h("label", {}, "Other audiences (comma-separated ids, NAMESPACE:id for another namespace than ups)", h("input", { name: "otherSegments", id: "export-other-segments", placeholder: "AAM:4edc8488-2c35-4f6d-b4c6-9075c68d2df4" })),
      h("div", {}, "Membership status: ", STATUSES.map((s) => checkbox("status", s, { value: s, checked: s !== "exited" }))),
    ),
    h(
      "label",
      {},
      "Merge policy",
      h(
        "select",
        { name: "mergePolicy", id: "export-merge-policy" },
        h("option", { value: "" }, "The sandbox's default policy"),
        (policies.children || []).map((p) =>
          h("option", { value: JSON.stringify({ id: p.id, version: p.version }) }, `${p.name} (${p.id}, version ${p.version})${p.default ? ", default" : ""}`),
        ),
      ),
    ),
    checkbox("emptyProfiles", "Export empty profiles (profiles with identities only)", { id: "export-empty-profiles" }),
    checkbox("segmentPerBatch", "One batch per segment", { id: "export-segment-per-batch" }),
    checkbox("evaluate", "Evaluate the ups segments first (evaluationInfo.segmentation)", { id: "export-evaluate" }),
  );
}

async function newExportPage() {
  const [datasets, policies, definitions] = await Promise.all([
    api("/data/foundation/catalog/dataSets?limit=100&orderBy=desc:created"),
    api("/data/core/ups/config/mergePolicies?limit=100"),
    api("/data/core/ups/segment/definitions?limit=100"),
  ]);
  const targets = Object.entries(datasets || {}).filter(([, d]) => d.schemaRef && d.schemaRef.id === PROFILE_UNION);
  if (!targets.length) {
    return h(
      "section",
      {},
      h("h1", {}, "New export"),
      h("p", {}, "An export writes into a dataset on the profile union schema, and this sandbox has none yet."),
      h("button", { id: "create-export-dataset", type: "button", onclick: createExportDataset }, "Create the dataset 'Profile Data Export'"),
    );
  }
  const preview = h("pre", { id: "export-json", class: "json" });
  const error = h("p", { id: "export-error", class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    { id: "export-form", class: "card split" },
    exportChoices(targets, policies, definitions),
    h(
      "div",
      { class: "sends" },
      h("p", { class: "muted" }, `It sends POST ${JOBS} with this body:`),
      preview,
      error,
      h("button", { id: "export-submit", type: "submit" }, "Create export job"),
    ),
  );
  // The preview follows every change; a refusal shown earlier is about a body no longer there.
  const update = () => {
    preview.textContent = JSON.stringify(exportBody(form), null, 2);
    error.hidden = true;
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = document.getElementById("export-submit");
    button.disabled = true;
    try {
      const job = await api(JOBS, { method: "POST", json: exportBody(form) });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
      button.disabled = false;
    }
  });
  update();
  return h("section", {}, h("h1", {}, "New export"), form);
}

// ---- start ---------------------------------------------------------------------------------

window.addEventListener("hashchange", render);
document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
render();
