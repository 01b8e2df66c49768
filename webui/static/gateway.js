// The gateway page: the routing table with backend health, request and
// error rates per app from two scrapes of /metrics, and the DNS records.
import { $, el, rows, every, nav, getJSON, parseProm, pager, round } from "./keel.js";

nav("gateway");

const ui = { routes: null, health: new Map(), records: [], dnsPage: 0, prev: null };

// Backend health from /v1/backends: {backends: [{addr, state ("up",
// "failing" or "ejected"), consecutive_failures, ejected_until, in_flight}]}.
async function backends() {
  const r = await fetch("/v1/backends", { headers: { Accept: "application/json" } });
  if (!r.ok) return new Map();
  const j = await r.json();
  return new Map((j.backends || []).map(b => [b.addr, b]));
}

function health(b) {
  const h = ui.health.get(b.addr);
  if (!h) return null;
  const busy = h.in_flight > 0 ? ` · ${h.in_flight} in flight` : "";
  if (h.state === "ejected") return el("span", { class: "bad", title: `until ${h.ejected_until}` }, "ejected" + busy);
  if (h.state === "failing") return el("span", { class: "warn" }, `failing (${h.consecutive_failures})` + busy);
  return el("span", { class: "ok" }, "up" + busy);
}

function renderRoutes() {
  const r = ui.routes;
  if (!r) return;
  $("gen").textContent = `table generation ${r.generation} · group ${r.group}`;
  const q = $("route-filter").value.trim().toLowerCase();
  const shown = r.routes.filter(x => !q || [x.app, x.path || "", x.listen || "", ...(x.vhosts || []), ...(x.backends || []).map(b => b.addr)]
    .some(v => v.toLowerCase().includes(q)));
  rows($("routes"), shown, x => el("tr", { "data-app": x.app },
    el("td", {}, el("code", {}, x.app)), el("td", { title: x.routes_file || "" }, x.source || "app"), el("td", {}, x.port_index), el("td", {}, x.mode), el("td", {}, (x.vhosts || []).join(", ")),
    el("td", {}, x.path || ""), el("td", {}, x.listen || ""), el("td", {}, x.balance + (x.sticky ? " (sticky)" : "")),
    el("td", {}, (x.backends || []).length ? el("ul", { class: "plain" }, x.backends.map(b => el("li", { title: b.task_id }, el("code", {}, b.addr), " ", health(b))))
      : el("span", { class: "bad" }, "no backends"))));
  if (!shown.length) rows($("routes"), [null], () => el("tr", {}, el("td", { colspan: 9, class: "muted" }, "no routes")));
  rows($("labels"), r.label_errors || [], e => el("tr", {},
    el("td", {}, e.app), el("td", {}, el("code", {}, e.label)), el("td", {}, e.value), el("td", {}, e.reason)));
}

// perApp sums the samples of metric name by their app label.
function perApp(samples, name, filter = () => true) {
  const m = new Map();
  for (const s of samples) if (s.name === name && s.labels.app !== undefined && filter(s.labels)) m.set(s.labels.app, (m.get(s.labels.app) || 0) + s.value);
  return m;
}

function scrape(samples) {
  const cls = c => l => l.code_class === c;
  return {
    at: performance.now(),
    total: perApp(samples, "keel_proxy_requests_total"),
    c2: perApp(samples, "keel_proxy_requests_total", cls("2xx")),
    c4: perApp(samples, "keel_proxy_requests_total", cls("4xx")),
    c5: perApp(samples, "keel_proxy_requests_total", cls("5xx")),
    errs: perApp(samples, "keel_proxy_backend_errors_total"),
    sum: perApp(samples, "keel_proxy_request_duration_seconds_sum"),
    count: perApp(samples, "keel_proxy_request_duration_seconds_count"),
  };
}

// rates compares two scrapes: counters are per second over the interval
// (a counter that went down was reset: its new value is the increase).
function rates(prev, cur) {
  const secs = (cur.at - prev.at) / 1000;
  const d = (k, app) => { const a = prev[k].get(app) || 0, b = cur[k].get(app) || 0; return b >= a ? b - a : b; };
  const apps = [...new Set([...cur.total.keys(), ...cur.errs.keys()])].sort();
  return apps.map(app => {
    const n = d("count", app);
    return { app, rps: d("total", app) / secs, c2: d("c2", app) / secs, c4: d("c4", app) / secs, c5: d("c5", app) / secs,
      errs: d("errs", app) / secs, latency: n > 0 ? d("sum", app) / n : null, total: cur.total.get(app) || 0 };
  });
}

async function renderRates() {
  const r = await fetch("/metrics");
  if (!r.ok) throw new Error(`/metrics: ${r.status}`);
  const cur = scrape(parseProm(await r.text()));
  const prev = ui.prev;
  ui.prev = cur;
  if (!prev) { $("rate-window").textContent = "(measuring…)"; return; }
  $("rate-window").textContent = `over the last ${round((cur.at - prev.at) / 1000)} s`;
  const list = rates(prev, cur);
  const f = x => round(x).toFixed(2);
  rows($("rates"), list, x => el("tr", { "data-app": x.app }, el("td", {}, el("code", {}, x.app)), el("td", {}, f(x.rps)),
    el("td", {}, f(x.c2)), el("td", { class: x.c4 > 0 ? "warn" : "" }, f(x.c4)), el("td", { class: x.c5 > 0 ? "bad" : "" }, f(x.c5)),
    el("td", { class: x.errs > 0 ? "bad" : "" }, f(x.errs)), el("td", {}, x.latency === null ? "—" : `${round(x.latency * 1000)} ms`),
    el("td", { class: "muted" }, x.total)));
  if (!list.length) rows($("rates"), [null], () => el("tr", {}, el("td", { colspan: 8, class: "muted" }, "no HTTP traffic yet")));
}

function renderDNS() {
  const q = $("dns-filter").value.trim().toLowerCase(), type = $("dns-type").value;
  const shown = ui.records.filter(x => (!type || x.rtype === type) && (!q || x.name.toLowerCase().includes(q) || x.host.toLowerCase().includes(q)));
  ui.dnsPage = pager($("dns"), $("dns-pager"), shown, ui.dnsPage, 50, x => el("tr", {},
    el("td", {}, el("code", {}, x.name)), el("td", {}, x.rtype), el("td", {}, el("code", {}, x.host.trim()))),
  p => { ui.dnsPage = p; renderDNS(); });
}

$("route-filter").addEventListener("input", renderRoutes);
$("dns-filter").addEventListener("input", () => { ui.dnsPage = 0; renderDNS(); });
$("dns-type").addEventListener("change", () => { ui.dnsPage = 0; renderDNS(); });

every(2000, async () => {
  const [routes, health] = await Promise.all([getJSON("/v1/routes"), backends().catch(() => new Map())]);
  ui.routes = routes; ui.health = health;
  renderRoutes();
});
every(5000, renderRates);
every(5000, async () => {
  const d = await getJSON("/v1/enumerate");
  ui.records = d.records || [];
  $("dns-domain").textContent = d.domain ? `· ${d.domain} · ${ui.records.length} records` : "";
  renderDNS();
});
