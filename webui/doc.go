// Package webui embeds Keel's web pages (plain HTML, CSS and JavaScript
// modules: no build step, no npm, no CDN) and serves them: the cluster page
// on the master (:5050/), the apps page on the Marathon API (:8080/ui/) and
// the gateway page on the gateway's admin address (:9090/).
//
// The pages use only the public APIs of the daemon that serves them:
//
//   - cluster.html, cluster.js: the operator API's SUBSCRIBE stream
//     (RecordIO over fetch) keeps agents, frameworks and tasks live;
//     GET_ROLES and /master/state are polled for roles and the leader. The
//     task page (#/tasks/{id}) shows the status history and tails the
//     task's sandbox (last 16 KiB, then new bytes every second) through
//     the agent files API.
//   - apps.html, apps.js: /v2/apps (with embeds), /v2/deployments,
//     /v2/queue, and the changes (create, scale, restart, suspend, edit
//     with a diff, destroy); /v2/events (EventSource) triggers refreshes.
//     422 details are shown next to the form field of their path.
//   - gateway.html, gateway.js: /v1/routes, /v1/backends when the gateway
//     has it, /v1/enumerate, and request rates from two /metrics scrapes.
//   - keel.js, keel.css: the shared helpers and style.
//
// Each page learns where the other two are from ?master=, ?apps= and
// ?gateway= (remembered in the browser), else it assumes the classic ports
// on its own host; links between the pages pass the addresses on.
//
// The only server-side logic is the cluster page's agent relay
// (agents.go): GET /agents/{id}/state, /files/read and /files/browse are
// forwarded to agent {id} as the master lists it (GET_AGENTS), so a
// browser that cannot reach the agents, or an agent without CORS headers,
// still works. It forwards nothing else and reaches no other host.
//
// The package must not import other Keel packages: the daemons mount its
// Handler, never the other way around.
package webui
