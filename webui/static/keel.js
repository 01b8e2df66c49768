// Shared helpers of Keel's pages: fetching JSON, building DOM safely
// (textContent only, never innerHTML with data), streams, paging, diffs.

export async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${(await r.text()).slice(0, 200)}`);
  return r.json();
}

// send makes a JSON request and never throws on an HTTP error: it returns
// {ok, status, data} so callers can show Marathon's error details.
export async function send(method, url, body) {
  const r = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  return { ok: r.ok, status: r.status, data };
}

// operator calls the Mesos operator API (POST /api/v1) of this master.
export async function operator(type) {
  const r = await fetch("/api/v1", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ type }),
  });
  if (!r.ok) throw new Error(`${type}: ${r.status}`);
  return r.json();
}

// RecordIO splits a byte stream of "<length>\n<length bytes of JSON>"
// records (Mesos' streaming format). Lengths count bytes, not characters.
export class RecordIO {
  constructor() { this.buf = new Uint8Array(0); this.dec = new TextDecoder(); }
  // push appends a chunk and returns the complete records it finished.
  push(chunk) {
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf); b.set(chunk, this.buf.length);
    const out = [];
    let i = 0;
    for (;;) {
      const nl = b.indexOf(10, i);
      if (nl < 0) break;
      const n = Number(this.dec.decode(b.subarray(i, nl)).trim());
      if (!Number.isInteger(n) || n < 0) throw new Error("recordio: bad length");
      if (b.length < nl + 1 + n) break;
      out.push(JSON.parse(this.dec.decode(b.subarray(nl + 1, nl + 1 + n))));
      i = nl + 1 + n;
    }
    this.buf = b.slice(i);
    return out;
  }
}

// subscribe POSTs body to url and calls onEvent for every RecordIO record
// until the stream ends or signal aborts. It resolves when the stream ends.
export async function subscribe(url, body, onEvent, signal) {
  const r = await fetch(url, {
    method: "POST", signal,
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  if (!r.ok || !r.body) throw new Error(`${url}: ${r.status}`);
  const reader = r.body.getReader();
  const rio = new RecordIO();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    for (const ev of rio.push(value)) onEvent(ev);
  }
}

// el("td", {class: "x"}, "text", child...) builds an element.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function rows(tbody, items, render) {
  tbody.replaceChildren(...items.map(render));
}

export const $ = id => document.getElementById(id);

export function bar(used, total) {
  const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
  const cls = pct > 90 ? "bar hot" : "bar";
  return el("span", { class: cls, title: `${round(used)} / ${round(total)}` }, el("span", { style: `width:${pct}%` }));
}

export const round = x => Math.round(x * 100) / 100;

// every runs fn now and then every ms milliseconds, showing its error in
// #err until it succeeds again.
export function every(ms, fn) {
  const key = Symbol();
  const run = async () => {
    try {
      await fn();
      setError("", key);
    } catch (e) {
      setError(String(e), key);
    }
  };
  run();
  return setInterval(run, ms);
}

const errors = new Map();

// setError shows msg in #err as the error of key ("" clears it); each
// poller and stream has its own key so one's success does not hide
// another's failure.
export function setError(msg, key = "page") {
  if (msg) errors.set(key, msg); else errors.delete(key);
  const e = $("err");
  if (e) e.textContent = [...errors.values()].join("\n");
}

// throttle returns a function that runs fn at most once every ms
// milliseconds, and always once after the last call.
export function throttle(fn, ms) {
  let timer = null, again = false;
  return function run() {
    if (timer) { again = true; return; }
    fn();
    timer = setTimeout(() => { timer = null; if (again) { again = false; run(); } }, ms);
  };
}

// links are the base URLs of the three pages. The page's own daemon is
// its origin; the others come from ?master=&apps=&gateway= (remembered in
// localStorage), else the classic ports on this host.
export function links(current) {
  const h = location.hostname, q = new URLSearchParams(location.search);
  const get = (k, def) => {
    if (k === current) return location.origin;
    const v = q.get(k);
    try {
      if (v) localStorage.setItem("keel." + k, v);
      return (v || localStorage.getItem("keel." + k) || def).replace(/\/$/, "");
    } catch {
      return (v || def).replace(/\/$/, "");
    }
  };
  return { master: get("master", `http://${h}:5050`), apps: get("apps", `http://${h}:8080`), gateway: get("gateway", `http://${h}:9090`) };
}

// linkTo is the URL of another page that passes the known addresses on.
export function linkTo(base, path, current) {
  return `${base}${path}?` + new URLSearchParams(links(current));
}

// nav renders the links between the three pages. Each page is served by a
// different daemon; in keel dev (and the classic layout) they are the
// same host on ports 5050, 8080 and 9090.
export function nav(current) {
  const l = links(current);
  const items = [["master", l.master, "/", "Cluster"], ["apps", l.apps, "/ui/", "Apps"], ["gateway", l.gateway, "/", "Gateway"]];
  $("nav").replaceChildren(...items.map(([id, base, path, label]) =>
    el("a", { href: linkTo(base, path, current), class: id === current ? "on" : "" }, label)));
}

// live shows the state of a page's event stream in #live.
export function live(state) {
  const e = $("live");
  if (!e) return;
  e.textContent = state;
  e.className = "live " + state;
}

// pager renders items[page] into tbody and the controls into ctl. It
// returns the number of pages. Only one page of rows is ever in the DOM.
export function pager(tbody, ctl, items, page, size, render, onPage) {
  const pages = Math.max(1, Math.ceil(items.length / size));
  page = Math.min(Math.max(0, page), pages - 1);
  rows(tbody, items.slice(page * size, (page + 1) * size), render);
  const from = items.length ? page * size + 1 : 0, to = Math.min(items.length, (page + 1) * size);
  ctl.replaceChildren(
    el("button", { onclick: () => onPage(page - 1), disabled: page === 0 }, "‹ prev"),
    el("span", { class: "muted" }, ` ${from}–${to} of ${items.length} `),
    el("button", { onclick: () => onPage(page + 1), disabled: page >= pages - 1 }, "next ›"));
  return page;
}

// diffLines is a line diff of a and b (longest common subsequence):
// a list of [op, line] with op " ", "-" or "+".
export function diffLines(a, b) {
  const x = a.split("\n"), y = b.split("\n");
  const n = x.length, m = y.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", x[i++]]);
    else out.push(["+", y[j++]]);
  }
  while (i < n) out.push(["-", x[i++]]);
  while (j < m) out.push(["+", y[j++]]);
  return out;
}

// parseProm parses the Prometheus text format into [{name, labels, value}].
export function parseProm(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// scalar sums the scalar resource name of a v1 resource list.
export function scalar(resources, name) {
  let s = 0;
  for (const r of resources || []) if (r.name === name && r.scalar) s += r.scalar.value;
  return s;
}

// ranges renders a v1 ranges resource ("31000-31002, 31010").
export function ranges(resources, name) {
  const out = [];
  for (const r of resources || [])
    if (r.name === name && r.ranges) for (const g of r.ranges.range || []) out.push(g.begin === g.end ? `${g.begin}` : `${g.begin}-${g.end}`);
  return out.join(", ");
}

// fileChunk takes the data of a files API read and returns the text to
// show and the number of file bytes it stands for. The agent sends bytes
// as a JSON string, in which each byte that is not UTF-8 became one U+FFFD:
// count those as one byte, and leave a character cut at the end of the
// chunk to the next read.
export function fileChunk(data) {
  const cut = /\uFFFD{1,3}$/.exec(data);
  const text = cut && cut.index > 0 ? data.slice(0, cut.index) : data;
  const bad = (text.match(/\uFFFD/g) || []).length;
  return [text, new TextEncoder().encode(text).length - 2 * bad];
}

export function fmtTime(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function fmtMem(mib) {
  return mib >= 1024 ? `${round(mib / 1024)} GiB` : `${round(mib)} MiB`;
}

export function stateBadge(state) {
  return el("span", { class: "state " + state }, (state || "").replace("TASK_", ""));
}
