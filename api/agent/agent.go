// Package agent is Keel's agent <-> master protocol. Mesos used internal
// libprocess messages here; Keel uses the same style as the Mesos v1
// executor API so that an agent needs nothing but outbound HTTP to the
// master:
//
//   - The agent POSTs a Call of type SUBSCRIBE to the master's
//     Path. The response is a RecordIO stream (package recordio) of Event
//     JSON records: first SUBSCRIBED (with the agent ID to use from then
//     on), then LAUNCH, KILL, ACKNOWLEDGED and HEARTBEAT events. The stream
//     staying open is the agent's connection; when it breaks the agent
//     re-subscribes with its ID.
//   - The master sends PING every agent ping timeout; the agent answers
//     each with a PONG call. An agent that misses too many in a row is
//     taken for partitioned (Mesos' --agent_ping_timeout and
//     --max_agent_ping_timeouts), even while its TCP stream looks open.
//   - Every other call (UPDATE, PONG) is a separate POST to the same path, with
//     the agent ID and the StreamIDHeader the SUBSCRIBE response carried;
//     the master answers 202 Accepted.
//   - Status updates are at-least-once: the agent keeps each update (per
//     task, in order) until an ACKNOWLEDGED event with its UUID arrives,
//     and resends it after a timeout or a reconnect. The master relays the
//     acknowledgement once the framework has acknowledged the update.
package agent

import "github.com/keelhq/keel/api/mesos"

// Path is the master's HTTP endpoint for agents.
const Path = "/api/keel/v1/agent"

// StreamIDHeader carries the stream ID of the SUBSCRIBE response; later
// calls must echo it.
const StreamIDHeader = "Keel-Agent-Stream-Id"

// Call types.
const (
	CallSubscribe = "SUBSCRIBE"
	CallUpdate    = "UPDATE"
	CallPong      = "PONG"
)

// Call is POSTed by an agent to Path.
type Call struct {
	Type      string     `json:"type"`
	AgentID   *mesos.ID  `json:"agent_id,omitempty"`
	Subscribe *Subscribe `json:"subscribe,omitempty"`
	Update    *Update    `json:"update,omitempty"`
}

// Subscribe registers (AgentInfo.ID empty) or re-registers (ID set) an
// agent. Tasks lists the tasks the agent runs now (with their latest
// state), so a master that lost track of them can reconcile.
type Subscribe struct {
	AgentInfo mesos.AgentInfo `json:"agent_info"`
	// IP is the address tasks on this agent are reachable at.
	IP string `json:"ip"`
	// Version is the agent's Keel version.
	Version string       `json:"version,omitempty"`
	Tasks   []mesos.Task `json:"tasks,omitempty"`
}

// Update carries a task status update from the agent.
type Update struct {
	FrameworkID mesos.ID         `json:"framework_id"`
	Status      mesos.TaskStatus `json:"status"`
}

// Event types.
const (
	EventSubscribed   = "SUBSCRIBED"
	EventLaunch       = "LAUNCH"
	EventKill         = "KILL"
	EventAcknowledged = "ACKNOWLEDGED"
	EventHeartbeat    = "HEARTBEAT"
	EventError        = "ERROR"
	EventPing         = "PING"
)

// Event is one record of the stream the master sends an agent.
type Event struct {
	Type         string        `json:"type"`
	Subscribed   *Subscribed   `json:"subscribed,omitempty"`
	Launch       *Launch       `json:"launch,omitempty"`
	Kill         *Kill         `json:"kill,omitempty"`
	Acknowledged *Acknowledged `json:"acknowledged,omitempty"`
	Error        *mesos.Error  `json:"error,omitempty"`
}

// Subscribed confirms registration.
type Subscribed struct {
	AgentID                  mesos.ID `json:"agent_id"`
	HeartbeatIntervalSeconds float64  `json:"heartbeat_interval_seconds"`
}

// Launch asks the agent to run a task for a framework.
type Launch struct {
	FrameworkID   mesos.ID            `json:"framework_id"`
	FrameworkInfo mesos.FrameworkInfo `json:"framework_info"`
	Task          mesos.TaskInfo      `json:"task"`
}

// Kill asks the agent to kill a task. With a KillPolicy its grace period
// overrides the task's own. The agent answers with TASK_KILLING (when the
// framework has the TASK_KILLING_STATE capability) and then TASK_KILLED.
type Kill struct {
	FrameworkID mesos.ID          `json:"framework_id"`
	TaskID      mesos.ID          `json:"task_id"`
	KillPolicy  *mesos.KillPolicy `json:"kill_policy,omitempty"`
}

// Acknowledged tells the agent that the update with UUID for TaskID has
// reached its framework, so the agent may forget it.
type Acknowledged struct {
	TaskID mesos.ID `json:"task_id"`
	UUID   []byte   `json:"uuid"`
}
