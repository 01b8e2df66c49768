// Package master owns the cluster's registry (agents, frameworks, tasks,
// outstanding offers) and its public HTTP surfaces: the Mesos v1 scheduler
// API (/api/v1/scheduler), the Mesos v1 operator API (/api/v1, including
// the SUBSCRIBE event stream gateways follow), Keel's agent protocol
// (api/agent), and the legacy endpoints Mesos tools read (/master/state,
// /state.json, /master/redirect, /health, /version, /metrics/snapshot).
//
// The master decides nothing about fairness itself: on every allocation
// interval and after every event that frees or adds resources it hands the
// allocator a copy of the state and turns its decisions into offers.
// Durable state (framework and agent registrations) goes through the Store
// interface; task state is not stored: agents re-report it.
//
// One mutex guards the registry. Every stream (framework, agent, operator)
// has its own bounded outbound queue and writer goroutine, so a slow
// client never blocks the master: a client whose queue overflows is
// disconnected and must re-subscribe.
package master
