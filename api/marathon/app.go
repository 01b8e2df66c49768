package marathon

// App is a Marathon app definition, as POSTed and as returned.
type App struct {
	ID                    string            `json:"id"`
	Cmd                   *string           `json:"cmd,omitempty"`
	Args                  []string          `json:"args,omitempty"`
	User                  string            `json:"user,omitempty"`
	Env                   map[string]string `json:"env,omitempty"`
	Instances             *int              `json:"instances,omitempty"`
	CPUs                  *float64          `json:"cpus,omitempty"`
	Mem                   *float64          `json:"mem,omitempty"`
	Disk                  *float64          `json:"disk,omitempty"`
	GPUs                  int               `json:"gpus,omitempty"`
	Constraints           [][]string        `json:"constraints,omitempty"`
	URIs                  []string          `json:"uris,omitempty"`
	Fetch                 []Fetch           `json:"fetch,omitempty"`
	PortDefinitions       []PortDefinition  `json:"portDefinitions,omitempty"`
	RequirePorts          bool              `json:"requirePorts,omitempty"`
	Container             *Container        `json:"container,omitempty"`
	Networks              []Network         `json:"networks,omitempty"`
	HealthChecks          []HealthCheck     `json:"healthChecks,omitempty"`
	ReadinessChecks       []ReadinessCheck  `json:"readinessChecks,omitempty"`
	Dependencies          []string          `json:"dependencies,omitempty"`
	UpgradeStrategy       *UpgradeStrategy  `json:"upgradeStrategy,omitempty"`
	Labels                map[string]string `json:"labels,omitempty"`
	BackoffSeconds        *float64          `json:"backoffSeconds,omitempty"`
	BackoffFactor         *float64          `json:"backoffFactor,omitempty"`
	MaxLaunchDelaySeconds *float64          `json:"maxLaunchDelaySeconds,omitempty"`
	KillSelection         string            `json:"killSelection,omitempty"`
	// UnreachableStrategy says when an instance on an unreachable agent is
	// replaced and when it is forgotten (see UnreachableStrategy).
	UnreachableStrategy *UnreachableStrategy `json:"unreachableStrategy,omitempty"`
	TaskKillGracePeriod *float64             `json:"taskKillGracePeriodSeconds,omitempty"`
	Version             string               `json:"version,omitempty"`
	VersionInfo         *VersionInfo         `json:"versionInfo,omitempty"`

	// Read-only fields in responses.
	TasksStaged     int             `json:"tasksStaged"`
	TasksRunning    int             `json:"tasksRunning"`
	TasksHealthy    int             `json:"tasksHealthy"`
	TasksUnhealthy  int             `json:"tasksUnhealthy"`
	Deployments     []DeploymentRef `json:"deployments"`
	Tasks           []Task          `json:"tasks,omitempty"`
	LastTaskFailure *TaskFailure    `json:"lastTaskFailure,omitempty"`
}

// Fetch is one URI to download into the sandbox.
type Fetch struct {
	URI        string `json:"uri"`
	Executable bool   `json:"executable,omitempty"`
	Extract    *bool  `json:"extract,omitempty"` // default true, as Marathon
	Cache      bool   `json:"cache,omitempty"`
	OutputFile string `json:"outputFile,omitempty"`
}

// PortDefinition is a host port of an app without port mappings. Port is
// the service port (0 = assign one).
type PortDefinition struct {
	Port     int               `json:"port"`
	Protocol string            `json:"protocol,omitempty"`
	Name     string            `json:"name,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Container is an app's container.
type Container struct {
	Type         string        `json:"type,omitempty"` // DOCKER or MESOS
	Docker       *Docker       `json:"docker,omitempty"`
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	Volumes      []Volume      `json:"volumes,omitempty"`
}

// Docker is Container.docker.
type Docker struct {
	Image          string        `json:"image"`
	Network        string        `json:"network,omitempty"`
	PortMappings   []PortMapping `json:"portMappings,omitempty"`
	Privileged     bool          `json:"privileged,omitempty"`
	Parameters     []Parameter   `json:"parameters,omitempty"`
	ForcePullImage bool          `json:"forcePullImage,omitempty"`
}

// Parameter is a docker run parameter.
type Parameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// PortMapping maps a container port to a host port and a service port.
type PortMapping struct {
	ContainerPort int               `json:"containerPort"`
	HostPort      *int              `json:"hostPort,omitempty"`
	ServicePort   int               `json:"servicePort,omitempty"`
	Protocol      string            `json:"protocol,omitempty"`
	Name          string            `json:"name,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// Volume is a container volume.
type Volume struct {
	ContainerPath string `json:"containerPath"`
	HostPath      string `json:"hostPath,omitempty"`
	Mode          string `json:"mode,omitempty"`
}

// Network is one entry of an app's networks.
type Network struct {
	Mode string `json:"mode"` // host, container/bridge, container
	Name string `json:"name,omitempty"`
}

// HealthCheck is a Marathon health check.
type HealthCheck struct {
	Protocol  string `json:"protocol,omitempty"`
	Path      string `json:"path,omitempty"`
	PortIndex *int   `json:"portIndex,omitempty"`
	Port      *int   `json:"port,omitempty"`
	Command   *struct {
		Value string `json:"value"`
	} `json:"command,omitempty"`
	GracePeriodSeconds     int  `json:"gracePeriodSeconds,omitempty"`
	IntervalSeconds        int  `json:"intervalSeconds,omitempty"`
	TimeoutSeconds         int  `json:"timeoutSeconds,omitempty"`
	MaxConsecutiveFailures int  `json:"maxConsecutiveFailures,omitempty"`
	DelaySeconds           int  `json:"delaySeconds,omitempty"`
	IgnoreHTTP1xx          bool `json:"ignoreHttp1xx,omitempty"`
}

// UpgradeStrategy bounds a rolling deployment.
type UpgradeStrategy struct {
	MinimumHealthCapacity *float64 `json:"minimumHealthCapacity,omitempty"`
	MaximumOverCapacity   *float64 `json:"maximumOverCapacity,omitempty"`
}

// VersionInfo tells when the app's config and scaling last changed.
type VersionInfo struct {
	LastScalingAt      string `json:"lastScalingAt,omitempty"`
	LastConfigChangeAt string `json:"lastConfigChangeAt,omitempty"`
}

// DeploymentRef names a deployment an app takes part in.
type DeploymentRef struct {
	ID string `json:"id"`
}

// TaskFailure is an app's last task failure.
type TaskFailure struct {
	AppID     string `json:"appId"`
	Host      string `json:"host"`
	Message   string `json:"message"`
	State     string `json:"state"`
	TaskID    string `json:"taskId"`
	Timestamp string `json:"timestamp"`
	Version   string `json:"version"`
}

// Task is a Marathon task (an instance of an app).
type Task struct {
	ID                 string              `json:"id"`
	AppID              string              `json:"appId"`
	Host               string              `json:"host"`
	IPAddresses        []IPAddress         `json:"ipAddresses"`
	Ports              []int               `json:"ports"`
	ServicePorts       []int               `json:"servicePorts"`
	SlaveID            string              `json:"slaveId"`
	State              string              `json:"state"`
	StagedAt           string              `json:"stagedAt,omitempty"`
	StartedAt          string              `json:"startedAt,omitempty"`
	Version            string              `json:"version,omitempty"`
	HealthCheckResults []HealthCheckResult `json:"healthCheckResults,omitempty"`
}

// IPAddress is one of a task's addresses.
type IPAddress struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

// HealthCheckResult is the health of one task for one check.
type HealthCheckResult struct {
	Alive               bool   `json:"alive"`
	ConsecutiveFailures int    `json:"consecutiveFailures"`
	FirstSuccess        string `json:"firstSuccess,omitempty"`
	LastFailure         string `json:"lastFailure,omitempty"`
	LastSuccess         string `json:"lastSuccess,omitempty"`
	LastFailureCause    string `json:"lastFailureCause,omitempty"`
	TaskID              string `json:"taskId"`
}

// AppResponse wraps one app: GET /v2/apps/{id}.
type AppResponse struct {
	App App `json:"app"`
}

// AppsResponse wraps a list of apps: GET /v2/apps.
type AppsResponse struct {
	Apps []App `json:"apps"`
}

// TasksResponse wraps a list of tasks: GET /v2/tasks, /v2/apps/{id}/tasks.
type TasksResponse struct {
	Tasks []Task `json:"tasks"`
}

// TaskResponse wraps one task: DELETE /v2/apps/{id}/tasks/{taskId}.
type TaskResponse struct {
	Task Task `json:"task"`
}

// DeleteTasks is the body of POST /v2/tasks/delete.
type DeleteTasks struct {
	IDs []string `json:"ids"`
}

// DeploymentResult is the reply to a change: {"version":..., "deploymentId":...}.
type DeploymentResult struct {
	Version      string `json:"version"`
	DeploymentID string `json:"deploymentId"`
}

// Error is Marathon's error body. Validation errors (422) carry Details.
type Error struct {
	Message string        `json:"message"`
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail names one invalid field by its JSON path ("/cpus").
type ErrorDetail struct {
	Path   string   `json:"path"`
	Errors []string `json:"errors"`
}

// Group is a Marathon group: GET /v2/groups returns the tree, POST and
// PUT /v2/groups take one. Apps and groups nest by ID ("/prod/web" is app
// web of group /prod).
type Group struct {
	ID           string   `json:"id"`
	Apps         []App    `json:"apps"`
	Groups       []Group  `json:"groups"`
	Dependencies []string `json:"dependencies"`
	Version      string   `json:"version,omitempty"`
	// ScaleBy, in a PUT, multiplies the instances of every app of the
	// group (rounded up) and ignores everything else.
	ScaleBy *float64 `json:"scaleBy,omitempty"`
}

// VersionsResponse lists an app's versions: GET /v2/apps/{id}/versions.
type VersionsResponse struct {
	Versions []string `json:"versions"`
}
