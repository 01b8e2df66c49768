// The apps page: Marathon apps with their tasks, deployments and launch
// queue; create, scale, restart, suspend, edit (with a diff) and destroy.
// It refreshes on every event of /v2/events (and slowly otherwise).
import { $, el, rows, every, nav, live, links, linkTo, getJSON, send, throttle, diffLines, fmtMem, stateBadge, setError } from "./keel.js";

nav("apps");

const EMBED = "/v2/apps?embed=apps.tasks&embed=apps.counts&embed=apps.deployments&embed=apps.lastTaskFailure";
// Fields of GET /v2/apps that are status, not definition.
const STATUS_FIELDS = ["tasks", "tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy", "deployments",
  "lastTaskFailure", "version", "versionInfo", "taskStats", "readinessCheckResults"];

const ui = { open: new Set(), apps: [], queue: [], destroyArmed: null };

const appPath = id => "/v2/apps" + id.split("/").map(encodeURIComponent).join("/");

async function refresh() {
  const [apps, deps, queue] = await Promise.all([getJSON(EMBED), getJSON("/v2/deployments"), getJSON("/v2/queue")]);
  ui.apps = apps.apps;
  ui.queue = queue.queue || [];
  renderApps();
  renderDeployments(deps || []);
  renderQueue();
}
const refreshSoon = throttle(() => refresh().then(() => setError("", "refresh")).catch(e => setError(String(e), "refresh")), 500);

function status(a) {
  const q = ui.queue.find(q => q.app.id === a.id);
  if (a.deployments && a.deployments.length) return ["deploying", "warn"];
  if (a.instances === 0) return ["suspended", "muted"];
  if (q && !q.delay.overdue && q.delay.timeLeftSeconds > 0) return [`delayed ${q.delay.timeLeftSeconds}s`, "bad"];
  if (a.tasksRunning < a.instances) return ["waiting", "warn"];
  if (a.tasksUnhealthy > 0) return ["unhealthy", "bad"];
  return ["running", "ok"];
}

// act runs one API call of a button and shows its error, if any.
async function act(method, path, body) {
  const res = await send(method, path, body);
  $("action-err").textContent = res.ok ? "" : `${method} ${path}: ${res.status} ${formatError(res.data)}`;
  refreshSoon();
  return res;
}

function formatError(d) {
  d = d || {};
  const details = (d.details || []).map(x => `${x.path}: ${(x.errors || []).join(", ")}`);
  return [d.message || "", ...details].join("\n");
}

function renderApps() {
  const q = $("filter").value.trim().toLowerCase();
  const apps = ui.apps.filter(a => !q || a.id.toLowerCase().includes(q) || (a.cmd || "").toLowerCase().includes(q));
  const out = [];
  for (const a of apps) {
    const [st, cls] = status(a);
    const scale = el("input", { class: "num", value: a.instances, "aria-label": `instances of ${a.id}`, "data-scale": a.id });
    const destroy = el("button", { class: "danger", "data-action": "destroy", onclick: () => {
      if (ui.destroyArmed === a.id) { ui.destroyArmed = null; act("DELETE", appPath(a.id)); return; }
      ui.destroyArmed = a.id; destroy.textContent = "Confirm destroy";
      setTimeout(() => { if (ui.destroyArmed === a.id) { ui.destroyArmed = null; destroy.textContent = "Destroy"; } }, 5000);
    } }, ui.destroyArmed === a.id ? "Confirm destroy" : "Destroy");
    const f = a.lastTaskFailure;
    out.push(el("tr", { "data-app": a.id },
      el("td", {}, el("a", { href: "#", onclick: e => { e.preventDefault(); ui.open.has(a.id) ? ui.open.delete(a.id) : ui.open.add(a.id); renderApps(); } },
        ui.open.has(a.id) ? "▾ " : "▸ ", el("code", {}, a.id))),
      el("td", { class: cls, "data-status": st }, st),
      el("td", { "data-running": a.tasksRunning }, `${a.tasksRunning} / ${a.instances}`),
      el("td", {}, a.healthChecks && a.healthChecks.length ? `${a.tasksHealthy}` + (a.tasksUnhealthy ? ` (${a.tasksUnhealthy} unhealthy)` : "") : el("span", { class: "muted" }, "no checks")),
      el("td", {}, a.tasksStaged), el("td", {}, a.cpus), el("td", {}, fmtMem(a.mem)),
      el("td", {}, (a.portDefinitions || []).map(p => p.port).join(", ")),
      el("td", { class: "muted", title: f ? f.timestamp : "" }, f ? `${f.state.replace("TASK_", "")}: ${f.message || ""}` : ""),
      el("td", {}, el("div", { class: "actions" }, scale,
        el("button", { "data-action": "scale", onclick: () => act("PUT", appPath(a.id), { instances: scaleValue(scale.value) }) }, "Scale"),
        el("button", { "data-action": "restart", onclick: () => act("POST", appPath(a.id) + "/restart") }, "Restart"),
        el("button", { "data-action": "suspend", onclick: () => act("PUT", appPath(a.id), { instances: 0 }), disabled: a.instances === 0 }, "Suspend"),
        el("button", { "data-action": "edit", onclick: () => openEdit(a) }, "Edit"), destroy))));
    if (ui.open.has(a.id)) out.push(el("tr", { class: "detail" }, el("td", { colspan: 10 }, taskTable(a))));
  }
  // Keep a half-typed scale value across refreshes.
  const typing = document.activeElement && document.activeElement.dataset && document.activeElement.dataset.scale;
  const value = typing && document.activeElement.value;
  $("apps").replaceChildren(...out);
  if (typing) {
    const input = [...$("apps").querySelectorAll("input[data-scale]")].find(i => i.dataset.scale === typing);
    if (input) { input.value = value; input.focus(); }
  }
}

const scaleValue = v => (/^\d+$/.test(v.trim()) ? Number(v) : v);

function taskTable(a) {
  const master = links("apps").master;
  const tasks = a.tasks || [];
  if (!tasks.length) return el("span", { class: "muted" }, "no tasks");
  return el("table", {}, el("thead", {}, el("tr", {}, ...["Task", "Host", "Ports", "State", "Health", "Started", "Version"].map(h => el("th", {}, h)))),
    el("tbody", {}, tasks.map(t => {
      const hc = t.healthCheckResults || [];
      const health = !hc.length ? el("span", { class: "muted" }, "—") : hc.every(h => h.alive) ? el("span", { class: "ok" }, "healthy")
        : el("span", { class: "bad", title: hc.map(h => h.lastFailureCause || "").join("; ") }, "unhealthy");
      return el("tr", { "data-task": t.id }, el("td", {}, el("a", { href: `${linkTo(master, "/", "apps")}#/tasks/${encodeURIComponent(t.id)}`, class: "task-link" }, el("code", {}, t.id))),
        el("td", {}, t.host), el("td", {}, (t.ports || []).join(", ")), el("td", {}, stateBadge(t.state)), el("td", {}, health),
        el("td", { class: "muted" }, t.startedAt || t.stagedAt || ""), el("td", { class: "muted" }, t.version || ""));
    })));
}

function renderDeployments(deps) {
  rows($("deployments"), deps, d => el("tr", {}, el("td", {}, el("code", {}, d.id)), el("td", {}, (d.affectedApps || []).join(", ")),
    el("td", {}, `${d.currentStep} / ${d.totalSteps}`),
    el("td", {}, (d.currentActions || []).map(x => `${x.action} ${x.app}`).join(", ")),
    el("td", {}, el("ol", {}, (d.steps || []).map((s, i) => el("li", { class: i + 1 < d.currentStep ? "muted" : i + 1 === d.currentStep ? "warn" : "" },
      (s.actions || s).map(x => `${x.action} ${x.app}`).join(", "))))),
    el("td", {}, el("button", { onclick: () => act("DELETE", `/v2/deployments/${encodeURIComponent(d.id)}`) }, "Roll back"))));
  if (!deps.length) rows($("deployments"), [null], () => el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no deployment in progress")));
}

function renderQueue() {
  rows($("queue"), ui.queue, q => {
    const s = q.processedOffersSummary || {};
    const reasons = (s.rejectSummaryLastOffers || []).filter(r => r.declined > 0).map(r => `${r.reason} (${r.declined}/${r.processed})`);
    return el("tr", {}, el("td", {}, el("code", {}, q.app.id)), el("td", {}, q.count),
      el("td", {}, q.delay.overdue ? el("span", { class: "muted" }, "none") : el("span", { class: "bad" }, `${q.delay.timeLeftSeconds}s`)),
      el("td", {}, s.processedOffersCount === undefined ? "" : `${s.processedOffersCount} processed, ${s.unusedOffersCount} unused`),
      el("td", {}, reasons.join(", ") || el("span", { class: "muted" }, "—")),
      el("td", {}, q.delay.overdue ? "" : el("button", { onclick: () => act("DELETE", `${appPath(q.app.id).replace("/v2/apps", "/v2/queue")}/delay`) }, "Launch now")));
  });
  if (!ui.queue.length) rows($("queue"), [null], () => el("tr", {}, el("td", { colspan: 6, class: "muted" }, "nothing waiting")));
}

// ---- create ----

const form = $("form");
const field = name => form.querySelector(`[name="${name}"]`);
let mode = "form";

function kv(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const s = line.trim();
    if (!s) continue;
    const i = s.indexOf("=");
    out[i < 0 ? s : s.slice(0, i).trim()] = i < 0 ? "" : s.slice(i + 1).trim();
  }
  return out;
}

const num = v => (v.trim() === "" ? undefined : isFinite(Number(v)) ? Number(v) : v.trim());

// fromForm builds an app definition from the form. Values that are not
// numbers are sent as typed so that the API reports them.
function fromForm() {
  const v = n => field(n).value.trim();
  const def = { id: v("id"), cmd: v("cmd") || undefined, instances: num(v("instances")), cpus: num(v("cpus")), mem: num(v("mem")), disk: num(v("disk")) };
  const ports = v("ports").split(",").map(s => s.trim()).filter(Boolean);
  if (ports.length) def.portDefinitions = ports.map(name => ({ port: 0, protocol: "tcp", name }));
  if (v("image")) def.container = { type: "DOCKER", docker: { image: v("image") } };
  if (v("health")) def.healthChecks = [{ protocol: "HTTP", path: v("health"), portIndex: 0, gracePeriodSeconds: 30, intervalSeconds: 10, maxConsecutiveFailures: 3 }];
  const env = kv(field("env").value), labels = kv(field("labels").value);
  if (Object.keys(env).length) def.env = env;
  if (Object.keys(labels).length) def.labels = labels;
  return JSON.parse(JSON.stringify(def));
}

function setMode(m) {
  if (m === "json" && mode === "form") $("def").value = JSON.stringify(fromForm(), null, 2);
  mode = m;
  form.hidden = m !== "form";
  $("json").hidden = m !== "json";
  $("tab-form").className = m === "form" ? "chip on" : "chip";
  $("tab-json").className = m === "json" ? "chip on" : "chip";
}
$("tab-form").addEventListener("click", () => setMode("form"));
$("tab-json").addEventListener("click", () => setMode("json"));

// showFieldErrors puts each of a 422's details next to the form field its
// path starts with; the rest go to box.
function showFieldErrors(data, box) {
  for (const i of form.querySelectorAll("[data-path]")) { i.classList.remove("invalid"); i.nextElementSibling.textContent = ""; }
  const rest = [];
  for (const d of (data && data.details) || []) {
    const input = mode === "form" && [...form.querySelectorAll("[data-path]")].find(i => d.path === i.dataset.path || d.path.startsWith(i.dataset.path + "/") || d.path.startsWith(i.dataset.path + "("));
    const msg = (d.errors || []).join(", ");
    if (input) { input.classList.add("invalid"); input.nextElementSibling.textContent = msg; }
    else rest.push(`${d.path}: ${msg}`);
  }
  box.textContent = data && (rest.length || !(data.details || []).length) ? [data.message || "", ...rest].join("\n") : "";
}

$("create").addEventListener("click", async () => {
  $("create-ok").textContent = "";
  let def;
  if (mode === "form") def = fromForm();
  else {
    try { def = JSON.parse($("def").value); } catch (e) { $("create-err").textContent = "Invalid JSON: " + e.message; return; }
  }
  const res = await send("POST", "/v2/apps", def);
  if (res.ok) {
    showFieldErrors(null, $("create-err"));
    $("create-ok").textContent = `created ${res.data.id}`;
  } else {
    showFieldErrors(res.data, $("create-err"));
    if (!res.data || !res.data.details) $("create-err").textContent = `${res.status} ${formatError(res.data)}`;
  }
  refreshSoon();
});

// ---- edit ----

let editing = null;

function definition(a) {
  const d = { ...a };
  for (const k of STATUS_FIELDS) delete d[k];
  return JSON.stringify(d, null, 2);
}

function openEdit(a) {
  editing = { id: a.id, before: definition(a) };
  $("edit-title").textContent = "Edit " + a.id;
  $("edit-def").value = editing.before;
  $("edit-diff").replaceChildren(el("span", { class: "muted" }, "no changes yet"));
  $("edit-err").textContent = "";
  $("edit-deploy").disabled = true;
  $("edit").showModal();
}

function review() {
  let after;
  try { after = JSON.stringify(JSON.parse($("edit-def").value), null, 2); } catch (e) { $("edit-err").textContent = "Invalid JSON: " + e.message; return null; }
  $("edit-err").textContent = "";
  const diff = diffLines(editing.before, after);
  const changed = diff.some(([op]) => op !== " ");
  $("edit-diff").replaceChildren(...(changed ? diff.filter((d, i) => d[0] !== " " || near(diff, i)).map(([op, line]) =>
    el("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same" }, `${op} ${line}`)) : [el("span", { class: "muted" }, "no changes")]));
  $("edit-deploy").disabled = !changed;
  return after;
}

// near keeps two lines of context around changes.
const near = (diff, i) => diff.slice(Math.max(0, i - 2), i + 3).some(([op]) => op !== " ");

$("edit-review").addEventListener("click", review);
$("edit-def").addEventListener("input", () => { $("edit-deploy").disabled = true; });
$("edit-cancel").addEventListener("click", () => $("edit").close());
$("edit-deploy").addEventListener("click", async () => {
  const after = review();
  if (!after) return;
  const res = await send("PUT", appPath(editing.id), JSON.parse(after));
  if (res.ok) { $("edit").close(); refreshSoon(); } else $("edit-err").textContent = `${res.status} ${formatError(res.data)}`;
});

// ---- events ----

const EVENTS = ["status_update_event", "health_status_changed_event", "failed_health_check_event", "deployment_info", "deployment_success",
  "deployment_failed", "deployment_step_success", "deployment_step_failure", "api_post_event", "app_terminated_event",
  "instance_changed_event", "unhealthy_instance_kill_event"];
const recent = [];

function onEvent(type, e) {
  let d = {};
  try { d = JSON.parse(e.data); } catch {}
  const app = d.appId || (d.plan && (d.plan.affectedApps || [])[0]) || (d.appDefinition && d.appDefinition.id) || "";
  const detail = d.taskStatus || d.taskId || (d.alive !== undefined ? (d.alive ? "alive" : "not alive") : "") || d.message || "";
  recent.unshift([d.timestamp || new Date().toISOString(), type, app, detail]);
  recent.length = Math.min(recent.length, 15);
  rows($("events"), recent, r => el("tr", {}, el("td", { class: "muted" }, r[0]), el("td", {}, r[1]), el("td", {}, el("code", {}, r[2])), el("td", {}, r[3])));
  refreshSoon();
}

function events() {
  const es = new EventSource("/v2/events");
  es.addEventListener("open", () => live("live"));
  es.addEventListener("error", () => live(es.readyState === EventSource.CLOSED ? "closed" : "reconnecting"));
  for (const t of EVENTS) es.addEventListener(t, e => onEvent(t, e));
}

$("filter").addEventListener("input", renderApps);
getJSON("/v2/info").then(i => { $("info").textContent = `${i.name} ${i.version} · leader ${i.leader}`; }).catch(() => {});
live("connecting");
events();
every(10000, refresh);
