// Shared helpers of Keel's pages: fetching JSON, building DOM safely
// (textContent only, never innerHTML with data), polling.

export async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.json();
}

export async function send(method, url, body) {
  const r = await fetch(url, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  return { ok: r.ok, status: r.status, data };
}

// el("td", {class: "x"}, "text", child...) builds an element.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function rows(tbody, items, render) {
  tbody.replaceChildren(...items.map(render));
}

export function bar(used, total) {
  const pct = total > 0 ? Math.min(100, (100 * used) / total) : 0;
  return el("span", { class: "bar", title: `${used} / ${total}` }, el("span", { style: `width:${pct}%` }));
}

// every runs fn now and then every ms milliseconds, showing errors in #err.
export function every(ms, fn) {
  const run = async () => {
    try {
      await fn();
      document.getElementById("err").textContent = "";
    } catch (e) {
      document.getElementById("err").textContent = String(e);
    }
  };
  run();
  return setInterval(run, ms);
}

// nav renders the links between the three pages. Each page is served by a
// different daemon; in keel dev (and the classic layout) they are the
// same host on ports 5050, 8080 and 9090.
export function nav(current) {
  const h = location.hostname;
  const links = [["cluster", `http://${h}:5050/`, "Cluster"], ["apps", `http://${h}:8080/ui/`, "Apps"], ["gateway", `http://${h}:9090/`, "Gateway"]];
  document.getElementById("nav").replaceChildren(...links.map(([id, href, label]) =>
    el("a", { href, class: id === current ? "on" : "" }, label)));
}
