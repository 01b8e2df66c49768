// Package apps is Keel's Marathon: a Mesos framework that keeps app
// definitions running, and the Marathon v2 REST API over them.
//
// It owns: app definitions and their persistence (through Store), service
// port assignment, turning offers into task launches (placement), restarts
// with backoff, scaling, and the /v2 API. It talks to the master only
// through the Master interface, which has the semantics of the Mesos v1
// scheduler API (cmd wires an HTTP client of it), so it runs the same in
// the master's process and on its own.
//
// Layout: model.go (validation, defaults, the definition <-> task
// mapping: pure), place.go (offers -> launches: pure), framework.go (the
// state and the event loop), api.go (handlers: decode, call, encode).
//
// Not yet here (later issues): rolling deployments bounded by the upgrade
// strategy, health checks, constraints, groups, the event stream.
package apps
