package mesos

// TaskState is a Mesos task state name.
type TaskState string

// Task states, as in Mesos.
const (
	TaskStaging     TaskState = "TASK_STAGING"
	TaskStarting    TaskState = "TASK_STARTING"
	TaskRunning     TaskState = "TASK_RUNNING"
	TaskKilling     TaskState = "TASK_KILLING"
	TaskFinished    TaskState = "TASK_FINISHED"
	TaskFailed      TaskState = "TASK_FAILED"
	TaskKilled      TaskState = "TASK_KILLED"
	TaskError       TaskState = "TASK_ERROR"
	TaskLost        TaskState = "TASK_LOST"
	TaskDropped     TaskState = "TASK_DROPPED"
	TaskUnreachable TaskState = "TASK_UNREACHABLE"
	TaskGone        TaskState = "TASK_GONE"
	TaskUnknown     TaskState = "TASK_UNKNOWN"
)

// Terminal reports whether no further state can follow s.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskFinished, TaskFailed, TaskKilled, TaskError, TaskLost, TaskDropped, TaskGone:
		return true
	}
	return false
}

// Status update sources.
const (
	SourceMaster   = "SOURCE_MASTER"
	SourceAgent    = "SOURCE_AGENT"
	SourceExecutor = "SOURCE_EXECUTOR"
)

// Status update reasons Keel sets (names as in Mesos).
const (
	ReasonCommandExecutorFailed    = "REASON_COMMAND_EXECUTOR_FAILED"
	ReasonExecutorTerminated       = "REASON_EXECUTOR_TERMINATED"
	ReasonInvalidOffers            = "REASON_INVALID_OFFERS"
	ReasonAgentRemoved             = "REASON_AGENT_REMOVED"
	ReasonAgentDisconnected        = "REASON_AGENT_DISCONNECTED"
	ReasonAgentUnknown             = "REASON_AGENT_UNKNOWN"
	ReasonTaskInvalid              = "REASON_TASK_INVALID"
	ReasonTaskUnknown              = "REASON_TASK_UNKNOWN"
	ReasonReconciliation           = "REASON_RECONCILIATION"
	ReasonContainerLaunchFailed    = "REASON_CONTAINER_LAUNCH_FAILED"
	ReasonFrameworkRemoved         = "REASON_FRAMEWORK_REMOVED"
	ReasonHealthCheckStatusUpdated = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
	ReasonTaskKilledDuringLaunch   = "REASON_TASK_KILLED_DURING_LAUNCH"
)
