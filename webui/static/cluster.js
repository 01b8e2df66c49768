// The cluster page: agents, frameworks, roles and tasks of the master
// that serves it, kept live from the operator SUBSCRIBE stream, and a task
// page (#/tasks/{id}) with its status history and a live tail of its
// sandbox through the agent files API (relayed by the master).
import {
  $, el, rows, bar, every, nav, live, getJSON, operator, subscribe, throttle, pager,
  scalar, ranges, fmtTime, fmtMem, round, stateBadge, setError, linkTo, fileChunk,
} from "./keel.js";

nav("master");

const TERMINAL = new Set(["TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
  "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"]);
const PAGE = 50;

// The model, replaced by every SUBSCRIBED event and patched by the others.
const S = { tasks: new Map(), agents: new Map(), frameworks: new Map(), master: null, state: null, roles: [] };
const ui = { stateFilter: "active", page: 0 };

const taskID = t => t.task_id.value;
const lastTime = t => (t.statuses && t.statuses.length ? t.statuses[t.statuses.length - 1].timestamp : 0);

function apply(ev) {
  switch (ev.type) {
    case "SUBSCRIBED": {
      const st = ev.subscribed.get_state || {};
      S.master = ev.subscribed.master_info || null;
      S.tasks = new Map();
      const tt = st.get_tasks || {};
      for (const t of [...(tt.completed_tasks || []), ...(tt.tasks || [])]) S.tasks.set(taskID(t), t);
      S.agents = new Map(((st.get_agents || {}).agents || []).map(a => [a.agent_info.id.value, a]));
      S.frameworks = new Map(((st.get_frameworks || {}).frameworks || []).map(f => [f.framework_info.id.value, f]));
      break;
    }
    case "TASK_ADDED": {
      const t = ev.task_added.task;
      S.tasks.set(taskID(t), t);
      break;
    }
    case "TASK_UPDATED": {
      const u = ev.task_updated, id = u.status.task_id.value;
      const t = S.tasks.get(id) || { task_id: u.status.task_id, name: id, framework_id: u.framework_id, agent_id: u.status.agent_id, statuses: [] };
      t.state = u.state;
      t.statuses = [...(t.statuses || []), u.status];
      S.tasks.set(id, t);
      break;
    }
    case "AGENT_ADDED": {
      const a = ev.agent_added.agent;
      S.agents.set(a.agent_info.id.value, a);
      break;
    }
    case "AGENT_REMOVED":
      S.agents.delete(ev.agent_removed.agent_id.value);
      break;
    case "FRAMEWORK_ADDED":
    case "FRAMEWORK_UPDATED": {
      const f = (ev.framework_added || ev.framework_updated).framework;
      S.frameworks.set(f.framework_info.id.value, f);
      break;
    }
    case "FRAMEWORK_REMOVED":
      S.frameworks.delete(ev.framework_removed.framework_info.id.value);
      break;
    default:
      return false; // HEARTBEAT and unknown events change nothing
  }
  return true;
}

// stream keeps one SUBSCRIBE stream open, reconnecting with a backoff.
async function stream() {
  let wait = 500;
  for (;;) {
    try {
      live("connecting");
      await subscribe("/api/v1", { type: "SUBSCRIBE" }, ev => {
        if (ev.type === "SUBSCRIBED") { live("live"); wait = 500; setError("", "stream"); }
        if (apply(ev)) redraw();
      });
      setError("event stream ended; reconnecting", "stream");
    } catch (e) {
      setError(`event stream: ${e.message || e}; reconnecting`, "stream");
    }
    live("reconnecting");
    await new Promise(r => setTimeout(r, wait));
    wait = Math.min(wait * 2, 10000);
  }
}

// Sums of the resources of active tasks, per agent and per framework.
function usage() {
  const z = () => ({ cpus: 0, mem: 0, disk: 0, tasks: 0 });
  const byAgent = new Map(), byFw = new Map();
  for (const t of S.tasks.values()) {
    if (TERMINAL.has(t.state)) continue;
    for (const [m, k] of [[byAgent, t.agent_id && t.agent_id.value], [byFw, t.framework_id && t.framework_id.value]]) {
      if (!m.has(k)) m.set(k, z());
      const u = m.get(k);
      u.cpus += scalar(t.resources, "cpus"); u.mem += scalar(t.resources, "mem"); u.disk += scalar(t.resources, "disk"); u.tasks++;
    }
  }
  return { byAgent, byFw };
}

const hostOf = id => { const a = S.agents.get(id); return a ? a.agent_info.hostname : id; };
const fwName = id => { const f = S.frameworks.get(id); return f ? f.framework_info.name : id; };

function taskPorts(t) {
  const d = t.discovery && t.discovery.ports && t.discovery.ports.ports;
  return d && d.length ? d.map(p => p.number).join(", ") : ranges(t.resources, "ports");
}

function attrs(a) {
  return (a.agent_info.attributes || []).map(x => `${x.name}:${x.text ? x.text.value : x.scalar ? x.scalar.value : ""}`).join(" ");
}

function renderOverview() {
  const { byAgent, byFw } = usage();
  const counts = {};
  for (const t of S.tasks.values()) counts[t.state] = (counts[t.state] || 0) + 1;
  let cpus = 0, mem = 0, usedCpus = 0, usedMem = 0;
  for (const a of S.agents.values()) { cpus += scalar(a.total_resources, "cpus"); mem += scalar(a.total_resources, "mem"); }
  for (const u of byAgent.values()) { usedCpus += u.cpus; usedMem += u.mem; }
  rows($("kpis"), [["agents", S.agents.size], ["frameworks", S.frameworks.size], ["running", counts.TASK_RUNNING || 0],
    ["staging", (counts.TASK_STAGING || 0) + (counts.TASK_STARTING || 0)], ["failed", (counts.TASK_FAILED || 0) + (counts.TASK_LOST || 0) + (counts.TASK_ERROR || 0)],
    ["CPUs", `${round(usedCpus)} / ${round(cpus)}`], ["memory", `${fmtMem(usedMem)} / ${fmtMem(mem)}`]],
  ([k, v]) => el("div", { class: "kpi" }, el("b", {}, v), k));

  const agents = [...S.agents.values()].sort((a, b) => a.agent_info.hostname.localeCompare(b.agent_info.hostname));
  const res = (a, u, name, fmt) => {
    const total = scalar(a.total_resources, name);
    return el("td", { class: "res" }, bar(u[name], total), ` ${fmt(u[name])} / ${fmt(total)}`);
  };
  rows($("agents"), agents, a => {
    const id = a.agent_info.id.value, u = byAgent.get(id) || { cpus: 0, mem: 0, disk: 0, tasks: 0 };
    return el("tr", {}, el("td", {}, el("code", { title: id }, short(id))), el("td", {}, a.agent_info.hostname),
      res(a, u, "cpus", round), res(a, u, "mem", fmtMem), res(a, u, "disk", fmtMem),
      el("td", {}, ranges(a.total_resources, "ports")), el("td", {}, attrs(a)), el("td", {}, u.tasks),
      el("td", {}, a.active ? "active" : el("span", { class: "bad" }, "disconnected")));
  });

  rows($("frameworks"), [...S.frameworks.values()], f => {
    const fi = f.framework_info, id = fi.id.value, u = byFw.get(id) || { cpus: 0, mem: 0, tasks: 0 };
    const href = fi.webui_url ? linkTo(fi.webui_url.replace(/\/$/, ""), "/ui/", "master") : null;
    return el("tr", {}, el("td", {}, el("code", { title: id }, short(id))),
      el("td", {}, href ? el("a", { href }, fi.name) : fi.name),
      el("td", {}, (fi.roles && fi.roles.length ? fi.roles : [fi.role || "*"]).join(", ")),
      el("td", {}, round(u.cpus)), el("td", {}, fmtMem(u.mem)), el("td", {}, u.tasks),
      el("td", {}, f.connected === false ? el("span", { class: "bad" }, "disconnected") : f.active ? "active" : "inactive"));
  });

  rows($("roles"), S.roles, r => el("tr", {}, el("td", {}, el("code", {}, r.name)), el("td", {}, r.weight),
    el("td", {}, (r.frameworks || []).map(f => fwName(f.value)).join(", ")),
    el("td", {}, round(scalar(r.resources, "cpus"))), el("td", {}, fmtMem(scalar(r.resources, "mem"))),
    el("td", {}, fmtMem(scalar(r.resources, "disk")))));

  renderTasks(counts);
}

const short = id => (id.length > 14 ? "…" + id.slice(-12) : id);

function renderTasks(counts) {
  const filters = [["active", [...S.tasks.values()].filter(t => !TERMINAL.has(t.state)).length], ["all", S.tasks.size],
    ...Object.entries(counts).sort()];
  $("states").replaceChildren(...filters.map(([s, n]) => el("button", {
    class: ui.stateFilter === s ? "chip on" : "chip", "data-state": s,
    onclick: () => { ui.stateFilter = s; ui.page = 0; redraw(); },
  }, `${s.replace("TASK_", "").toLowerCase()} ${n}`)));
  const q = $("filter").value.trim().toLowerCase();
  const shown = [];
  for (const t of S.tasks.values()) {
    if (ui.stateFilter === "active" ? TERMINAL.has(t.state) : ui.stateFilter !== "all" && t.state !== ui.stateFilter) continue;
    if (q && ![taskID(t), t.name, hostOf(t.agent_id && t.agent_id.value), fwName(t.framework_id.value)].some(v => (v || "").toLowerCase().includes(q))) continue;
    shown.push(t);
  }
  shown.sort((a, b) => lastTime(b) - lastTime(a) || taskID(a).localeCompare(taskID(b)));
  ui.page = pager($("tasks"), $("tasks-pager"), shown, ui.page, PAGE, t => el("tr", {},
    el("td", {}, el("a", { href: "#/tasks/" + encodeURIComponent(taskID(t)) }, el("code", {}, taskID(t)))),
    el("td", {}, t.name), el("td", {}, fwName(t.framework_id.value)), el("td", {}, hostOf(t.agent_id && t.agent_id.value)),
    el("td", {}, stateBadge(t.state)), el("td", {}, taskPorts(t)), el("td", { class: "muted" }, fmtTime(lastTime(t)))),
  p => { ui.page = p; redraw(); });
}

function renderMasters() {
  const st = S.state;
  if (!st) return;
  $("leader").textContent = `leader ${st.leader_info ? st.leader_info.hostname + ":" + st.leader_info.port : st.leader || "none"} · ${st.version}`;
  const list = [];
  if (st.leader_info) list.push({ role: "leader", ...st.leader_info, start: st.id === st.leader_info.id ? st.start_time : 0, elected: st.elected_time });
  if (!st.leader_info || st.id !== st.leader_info.id) list.push({ role: "this master", id: st.id, hostname: st.hostname, port: location.port, version: st.version, start: st.start_time });
  rows($("masters"), list, m => el("tr", {}, el("td", {}, el("b", {}, m.role)), el("td", {}, el("code", {}, m.id)),
    el("td", {}, `${m.hostname}:${m.port}`), el("td", {}, m.version || ""), el("td", { class: "muted" }, fmtTime(m.start)),
    el("td", { class: "muted" }, fmtTime(m.elected))));
}

// ---- the task page ----

let tail = null;

function renderTask(id) {
  const t = S.tasks.get(id);
  $("task-title").textContent = "Task " + id;
  if (!t) { $("task-facts").replaceChildren(el("dd", { class: "muted" }, S.tasks.size ? "unknown task" : "loading…")); return; }
  const agent = t.agent_id && t.agent_id.value;
  const labels = ((t.labels && t.labels.labels) || []).map(l => `${l.key}=${l.value}`).join("  ");
  const facts = [["Name", t.name], ["State", stateBadge(t.state)], ["Framework", fwName(t.framework_id.value)], ["Agent", `${hostOf(agent)} (${agent})`],
    ["CPUs", scalar(t.resources, "cpus")], ["Mem", fmtMem(scalar(t.resources, "mem"))], ["Ports", taskPorts(t)], ["Labels", labels]];
  $("task-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  rows($("task-statuses"), [...(t.statuses || [])].reverse(), s => el("tr", {}, el("td", { class: "muted" }, fmtTime(s.timestamp)),
    el("td", {}, stateBadge(s.state)), el("td", {}, (s.source || "").replace("SOURCE_", "").toLowerCase()),
    el("td", {}, s.reason || ""), el("td", {}, s.healthy === undefined ? "" : s.healthy ? "yes" : el("span", { class: "bad" }, "no")),
    el("td", {}, s.message || "")));
  if (!tail || tail.task !== id) {
    if (tail) tail.stop();
    tail = new Tail(id, agent, t.framework_id.value);
    tail.start();
  }
}

// safeName mirrors how an agent names sandbox directories.
const safeName = s => s.replaceAll("/", "_").replaceAll("..", "__") || "_";

const files = (agent, op, params) => `/agents/${encodeURIComponent(agent)}/files/${op}?` + new URLSearchParams(params);

// Tail follows one file of a task's sandbox: it starts at the last 16 KiB
// and then polls the agent for new bytes.
class Tail {
  constructor(task, agent, framework) {
    Object.assign(this, { task, agent, framework, file: "stdout", offset: 0, timer: null, gen: 0 });
  }
  async start() {
    try {
      const runs = await getJSON(files(this.agent, "browse", { path: `${safeName(this.framework)}/${safeName(this.task)}` }));
      const run = runs.filter(f => f.mode.startsWith("d")).sort((a, b) => b.mtime - a.mtime)[0];
      if (!run) throw new Error("no sandbox yet");
      this.dir = run.path;
      $("sandbox-path").textContent = run.path;
      await this.listFiles();
      this.open("stdout");
    } catch (e) {
      $("tail-status").textContent = `sandbox: ${e.message || e}`;
    }
  }
  async listFiles() {
    const list = await getJSON(files(this.agent, "browse", { path: this.dir }));
    $("sandbox-files").replaceChildren(...list.filter(f => !f.mode.startsWith("d")).map(f => {
      const name = f.path.split("/").pop();
      return el("button", { class: name === this.file ? "chip on" : "chip", "data-file": name, onclick: () => this.open(name) }, `${name} (${f.size} B)`);
    }));
  }
  async open(name) {
    this.file = name;
    const gen = ++this.gen;
    clearTimeout(this.timer);
    $("tail").textContent = "";
    for (const b of $("sandbox-files").children) b.className = b.dataset.file === name ? "chip on" : "chip";
    try {
      const end = await getJSON(files(this.agent, "read", { path: `${this.dir}/${name}`, offset: -1 }));
      // Start at the last 16 KiB, on a line: read from the byte before it
      // and drop everything up to the first newline.
      this.offset = Math.max(0, end.offset - 16384 - 1);
      this.skipPartialLine = this.offset > 0;
      if (gen === this.gen) this.poll(gen);
    } catch (e) {
      $("tail-status").textContent = `${name}: ${e.message || e}`;
    }
  }
  async poll(gen) {
    try {
      for (;;) {
        const r = await getJSON(files(this.agent, "read", { path: `${this.dir}/${this.file}`, offset: this.offset, length: 65536 }));
        if (gen !== this.gen) return;
        if (!r.data) break;
        let [text, bytes] = fileChunk(r.data);
        this.offset += bytes;
        if (this.skipPartialLine) {
          const nl = text.indexOf("\n");
          text = nl < 0 ? "" : text.slice(nl + 1);
          this.skipPartialLine = nl < 0;
        }
        this.append(text);
        if (bytes < 65536) break;
      }
      $("tail-status").textContent = `following ${this.file} · ${this.offset} bytes`;
    } catch (e) {
      $("tail-status").textContent = `${this.file}: ${e.message || e}; retrying`;
    }
    if (gen === this.gen) this.timer = setTimeout(() => this.poll(gen), 1000);
  }
  append(text) {
    const pre = $("tail");
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(text);
    if (pre.textContent.length > 512 * 1024) pre.textContent = pre.textContent.slice(-256 * 1024);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }
  stop() { this.gen++; clearTimeout(this.timer); }
}

// ---- routing ----

function route() {
  const m = /^#\/tasks\/(.+)$/.exec(location.hash);
  $("overview").hidden = !!m;
  $("task").hidden = !m;
  if (m) renderTask(decodeURIComponent(m[1]));
  else {
    if (tail) { tail.stop(); tail = null; }
    renderOverview();
  }
}

const redraw = throttle(route, 250);
window.addEventListener("hashchange", route);
$("filter").addEventListener("input", () => { ui.page = 0; redraw(); });

stream();
// Leader and roles are not on the event stream: ask for them now and then.
every(30000, async () => { S.state = await getJSON("/master/state"); renderMasters(); });
every(5000, async () => { S.roles = ((await operator("GET_ROLES")).get_roles || {}).roles || []; redraw(); });
