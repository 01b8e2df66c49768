// Package snapshot is the immutable view of the cluster that a gateway's
// discovery publishes and that dns and proxy consume: masters, agents,
// frameworks and live tasks with their addresses, ports, health and labels.
//
// A Snapshot is never modified after it is published. Consumers keep a
// pointer to it (or to a structure they derive from it) and swap that
// pointer atomically when a new one arrives; nothing on a request path
// takes a lock shared with the updater. This package holds data and pure
// helpers only: no I/O, no goroutines.
package snapshot

import (
	"time"

	"github.com/keelhq/keel/api/mesos"
)

// Snapshot is one consistent view of the cluster.
type Snapshot struct {
	// Generation increases by one with every published snapshot.
	Generation uint64
	// Updated is when the state in this snapshot was last changed by the
	// master's event stream.
	Updated time.Time
	// Leader is the leading master; zero when unknown.
	Leader Master
	// Masters are all known masters, the leader among them.
	Masters []Master
	// Agents by agent ID.
	Agents map[string]Agent
	// Frameworks by framework ID.
	Frameworks map[string]Framework
	// Tasks are the non-terminal tasks, sorted by ID.
	Tasks []Task
}

// Master is a master's address.
type Master struct {
	ID       string
	Hostname string
	IP       string
	Port     int
}

// Agent is an agent's identity and address.
type Agent struct {
	ID       string
	Hostname string
	IP       string
}

// Framework is a framework's identity.
type Framework struct {
	ID   string
	Name string
}

// Task is a live task with everything a name or a route needs.
type Task struct {
	ID            string
	Name          string // Mesos task name, e.g. "web.prod" for Marathon app /prod/web
	FrameworkID   string
	FrameworkName string
	AgentID       string
	AgentHostname string
	AgentIP       string
	State         mesos.TaskState
	// HasHealthCheck tells whether the task has a health check at all;
	// Healthy is the latest result (nil until the first one).
	HasHealthCheck bool
	Healthy        *bool
	// IPs are the task's own addresses from its latest status's network
	// infos (container IPs on bridge networks); empty for host networking.
	IPs []string
	// Ports are the task's host ports from its DiscoveryInfo (or, without
	// one, from its ports resources), in declaration order.
	Ports []Port
	// Labels are the TaskInfo labels (for Marathon tasks: the app's labels).
	Labels map[string]string
	// DiscoveryName is DiscoveryInfo.name, when set.
	DiscoveryName string
	// AppID is the Marathon app ID ("/prod/web") of tasks launched by the
	// apps framework; empty for other frameworks' tasks.
	AppID string
	// StartedAt is when the task was first seen RUNNING (zero if never).
	StartedAt time.Time
}

// Port is one host port of a task.
type Port struct {
	Number   uint32
	Protocol string // "tcp" or "udp"
	Name     string
	// ServicePort is the cluster-wide service port this host port serves
	// (0 when the task has none).
	ServicePort uint32
}

// Routable reports whether new requests and DNS answers may go to t: it is
// RUNNING and, when healthyOnly is set and it has a health check, healthy.
// A task in TASK_KILLING is never routable, so gateways drain it.
func (t *Task) Routable(healthyOnly bool) bool {
	if t.State != mesos.TaskRunning {
		return false
	}
	if healthyOnly && t.HasHealthCheck {
		return t.Healthy != nil && *t.Healthy
	}
	return true
}

// Group is the key that collects the tasks of one app: the Marathon app ID
// when there is one, else the framework ID and task name.
func (t *Task) Group() string {
	if t.AppID != "" {
		return t.AppID
	}
	return t.FrameworkID + "/" + t.Name
}

// Empty returns a valid snapshot that holds nothing (generation 0).
func Empty() *Snapshot {
	return &Snapshot{Agents: map[string]Agent{}, Frameworks: map[string]Framework{}}
}
