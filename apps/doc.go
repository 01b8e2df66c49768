// Package apps is Keel's Marathon: a Mesos framework that keeps app
// definitions running, and the Marathon v2 REST API over them.
//
// It owns: app definitions, their versions and groups and their
// persistence (through Store), service port assignment, turning offers
// into task launches (placement, constraints, dependencies), restarts
// with backoff, scaling, rolling deployments, and the /v2 API. It talks
// to the master only through the Master interface, which has the
// semantics of the Mesos v1 scheduler API (cmd wires an HTTP client of
// it), so it runs the same in the master's process and on its own. It
// must not import other Keel packages but api and internal helpers.
//
// Layout: model.go (validation, defaults, the definition <-> task
// mapping: pure), constraints.go (Marathon constraints: pure), place.go
// (offers -> launches: pure), docker.go (container and port mappings:
// pure), deploy.go (the rolling upgrade planner: pure), groups.go (the
// group tree and dependencies: pure), offers.go (why an app waits, for
// /v2/queue), framework.go (the state and the event loop), api.go,
// group_api.go, versions.go and deployments.go (handlers and the
// operations behind them), events.go (/v2/events), front.go (the API on
// standby masters), unreachable.go (unreachableStrategy: when a task on a
// cut-off agent is replaced and forgotten), readiness.go (the readiness
// checks the framework runs itself during deployments), tasks.go (killing
// tasks through the API). README.md has a picture of how it fits together.
package apps
