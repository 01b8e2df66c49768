package mesos

// Operator API call and response types (v1/master.proto).
const (
	OpGetHealth     = "GET_HEALTH"
	OpGetVersion    = "GET_VERSION"
	OpGetState      = "GET_STATE"
	OpGetAgents     = "GET_AGENTS"
	OpGetFrameworks = "GET_FRAMEWORKS"
	OpGetTasks      = "GET_TASKS"
	OpGetMaster     = "GET_MASTER"
	OpGetRoles      = "GET_ROLES"
	OpGetMetrics    = "GET_METRICS"
	OpGetQuota      = "GET_QUOTA"
	OpUpdateQuota   = "UPDATE_QUOTA"
	OpSubscribe     = "SUBSCRIBE"
)

// OperatorCall is a call POSTed to /api/v1.
type OperatorCall struct {
	Type        string       `json:"type"`
	UpdateQuota *UpdateQuota `json:"update_quota,omitempty"`
}

// UpdateQuota is Call.UpdateQuota (Mesos 1.9+): set the guarantees and
// limits of roles; a config with neither removes the role's quota.
type UpdateQuota struct {
	Force        bool          `json:"force,omitempty"`
	QuotaConfigs []QuotaConfig `json:"quota_configs"`
}

// QuotaConfig is one role's quota: scalar guarantees and limits by
// resource name.
type QuotaConfig struct {
	Role       string            `json:"role"`
	Guarantees map[string]Scalar `json:"guarantees,omitempty"`
	Limits     map[string]Scalar `json:"limits,omitempty"`
}

// GetQuota is Response.GetQuota.
type GetQuota struct {
	Status QuotaStatus `json:"status"`
}

// QuotaStatus lists the quota of every role that has one.
type QuotaStatus struct {
	Configs []QuotaConfig `json:"configs,omitempty"`
}

// OperatorResponse is the reply to an OperatorCall.
type OperatorResponse struct {
	Type          string         `json:"type"`
	GetHealth     *GetHealth     `json:"get_health,omitempty"`
	GetVersion    *GetVersion    `json:"get_version,omitempty"`
	GetState      *GetState      `json:"get_state,omitempty"`
	GetAgents     *GetAgents     `json:"get_agents,omitempty"`
	GetFrameworks *GetFrameworks `json:"get_frameworks,omitempty"`
	GetTasks      *GetTasks      `json:"get_tasks,omitempty"`
	GetMaster     *GetMaster     `json:"get_master,omitempty"`
	GetRoles      *GetRoles      `json:"get_roles,omitempty"`
	GetMetrics    *GetMetrics    `json:"get_metrics,omitempty"`
	GetQuota      *GetQuota      `json:"get_quota,omitempty"`
}

// GetMetrics is Response.GetMetrics: the master's metrics under Mesos'
// names (the same set as /metrics/snapshot).
type GetMetrics struct {
	Metrics []Metric `json:"metrics"`
}

// Metric is one named value of GetMetrics.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// GetRoles is Response.GetRoles.
type GetRoles struct {
	Roles []Role `json:"roles"`
}

// Role is a role with its weight, frameworks and allocation.
type Role struct {
	Name       string    `json:"name"`
	Weight     float64   `json:"weight"`
	Frameworks []ID      `json:"frameworks,omitempty"`
	Resources  Resources `json:"resources,omitempty"`
	// Quota is the role's quota, when it has one.
	Quota *QuotaConfig `json:"quota,omitempty"`
}

// GetHealth is Response.GetHealth.
type GetHealth struct {
	Healthy bool `json:"healthy"`
}

// GetVersion is Response.GetVersion.
type GetVersion struct {
	VersionInfo VersionInfo `json:"version_info"`
}

// VersionInfo describes the build.
type VersionInfo struct {
	Version   string `json:"version"`
	BuildDate string `json:"build_date,omitempty"`
	GitSHA    string `json:"git_sha,omitempty"`
}

// GetState is Response.GetState: everything at once.
type GetState struct {
	GetTasks      GetTasks      `json:"get_tasks"`
	GetFrameworks GetFrameworks `json:"get_frameworks"`
	GetAgents     GetAgents     `json:"get_agents"`
}

// GetTasks is Response.GetTasks.
type GetTasks struct {
	Tasks          []Task `json:"tasks,omitempty"`
	CompletedTasks []Task `json:"completed_tasks,omitempty"`
}

// GetFrameworks is Response.GetFrameworks.
type GetFrameworks struct {
	Frameworks          []FrameworkState `json:"frameworks,omitempty"`
	CompletedFrameworks []FrameworkState `json:"completed_frameworks,omitempty"`
}

// FrameworkState is Response.GetFrameworks.Framework.
type FrameworkState struct {
	FrameworkInfo      FrameworkInfo `json:"framework_info"`
	Active             bool          `json:"active"`
	Connected          bool          `json:"connected"`
	Recovered          bool          `json:"recovered"`
	RegisteredTime     *TimeInfo     `json:"registered_time,omitempty"`
	AllocatedResources Resources     `json:"allocated_resources,omitempty"`
	OfferedResources   Resources     `json:"offered_resources,omitempty"`
}

// TimeInfo is a point in time in nanoseconds since the epoch.
type TimeInfo struct {
	Nanoseconds int64 `json:"nanoseconds"`
}

// GetAgents is Response.GetAgents.
type GetAgents struct {
	Agents []AgentState `json:"agents,omitempty"`
	// RecoveredAgents are agents a new leader knows from its registry that
	// have not re-registered yet (Mesos' recovered_agents): their tasks
	// are unknown, not gone.
	RecoveredAgents []AgentInfo `json:"recovered_agents,omitempty"`
}

// AgentState is Response.GetAgents.Agent.
type AgentState struct {
	AgentInfo          AgentInfo `json:"agent_info"`
	Active             bool      `json:"active"`
	Version            string    `json:"version,omitempty"`
	PID                string    `json:"pid,omitempty"`
	RegisteredTime     *TimeInfo `json:"registered_time,omitempty"`
	TotalResources     Resources `json:"total_resources,omitempty"`
	AllocatedResources Resources `json:"allocated_resources,omitempty"`
	OfferedResources   Resources `json:"offered_resources,omitempty"`
}

// GetMaster is Response.GetMaster.
type GetMaster struct {
	MasterInfo MasterInfo `json:"master_info"`
}

// Operator SUBSCRIBE event types (v1/master.proto Event.Type).
const (
	OpEventSubscribed       = "SUBSCRIBED"
	OpEventTaskAdded        = "TASK_ADDED"
	OpEventTaskUpdated      = "TASK_UPDATED"
	OpEventAgentAdded       = "AGENT_ADDED"
	OpEventAgentRemoved     = "AGENT_REMOVED"
	OpEventFrameworkAdded   = "FRAMEWORK_ADDED"
	OpEventFrameworkUpdated = "FRAMEWORK_UPDATED"
	OpEventFrameworkRemoved = "FRAMEWORK_REMOVED"
	OpEventHeartbeat        = "HEARTBEAT"
)

// OperatorEvent is one record of the operator SUBSCRIBE stream.
type OperatorEvent struct {
	Type             string            `json:"type"`
	Subscribed       *OpSubscribed     `json:"subscribed,omitempty"`
	TaskAdded        *TaskAdded        `json:"task_added,omitempty"`
	TaskUpdated      *TaskUpdated      `json:"task_updated,omitempty"`
	AgentAdded       *AgentAdded       `json:"agent_added,omitempty"`
	AgentRemoved     *AgentRemoved     `json:"agent_removed,omitempty"`
	FrameworkAdded   *FrameworkEvent   `json:"framework_added,omitempty"`
	FrameworkUpdated *FrameworkEvent   `json:"framework_updated,omitempty"`
	FrameworkRemoved *FrameworkRemoved `json:"framework_removed,omitempty"`
}

// OpSubscribed is Event.Subscribed of the operator stream: the full state
// the incremental events that follow apply to.
type OpSubscribed struct {
	GetState                 GetState    `json:"get_state"`
	HeartbeatIntervalSeconds float64     `json:"heartbeat_interval_seconds,omitempty"`
	MasterInfo               *MasterInfo `json:"master_info,omitempty"`
}

// TaskAdded is Event.TaskAdded.
type TaskAdded struct {
	Task Task `json:"task"`
}

// TaskUpdated is Event.TaskUpdated. Status is the latest status; State the
// task's current state.
type TaskUpdated struct {
	FrameworkID ID         `json:"framework_id"`
	Status      TaskStatus `json:"status"`
	State       TaskState  `json:"state"`
}

// AgentAdded is Event.AgentAdded.
type AgentAdded struct {
	Agent AgentState `json:"agent"`
}

// AgentRemoved is Event.AgentRemoved.
type AgentRemoved struct {
	AgentID ID `json:"agent_id"`
}

// FrameworkEvent is Event.FrameworkAdded / FrameworkUpdated.
type FrameworkEvent struct {
	Framework FrameworkState `json:"framework"`
}

// FrameworkRemoved is Event.FrameworkRemoved.
type FrameworkRemoved struct {
	FrameworkInfo FrameworkInfo `json:"framework_info"`
}
