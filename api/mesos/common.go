package mesos

import (
	"fmt"
	"net"
	"strings"
)

// ID is the shape of every Mesos identifier message (FrameworkID, AgentID,
// TaskID, OfferID, ExecutorID, ContainerID): {"value": "..."}.
type ID struct {
	Value string `json:"value"`
}

// NewID returns an ID holding v.
func NewID(v string) *ID { return &ID{Value: v} }

// Val returns the value of id, or "" for a nil id.
func (id *ID) Val() string {
	if id == nil {
		return ""
	}
	return id.Value
}

// Label is one key/value pair of Labels.
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// Labels is Mesos' Labels message.
type Labels struct {
	Labels []Label `json:"labels,omitempty"`
}

// Map returns the labels as a map (a later key wins over an earlier one).
func (l *Labels) Map() map[string]string {
	if l == nil || len(l.Labels) == 0 {
		return nil
	}
	m := make(map[string]string, len(l.Labels))
	for _, kv := range l.Labels {
		m[kv.Key] = kv.Value
	}
	return m
}

// Get returns the value of key and whether it was present.
func (l *Labels) Get(key string) (string, bool) {
	if l == nil {
		return "", false
	}
	for _, kv := range l.Labels {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// Attribute is an agent attribute (text or scalar).
type Attribute struct {
	Name   string  `json:"name"`
	Type   string  `json:"type"`
	Text   *Text   `json:"text,omitempty"`
	Scalar *Scalar `json:"scalar,omitempty"`
}

// Text is Value.Text.
type Text struct {
	Value string `json:"value"`
}

// Address is a network address (used in MasterInfo and AgentInfo).
type Address struct {
	Hostname string `json:"hostname,omitempty"`
	IP       string `json:"ip,omitempty"`
	Port     int    `json:"port"`
}

// MasterInfo describes a master; it is also the JSON stored in ZooKeeper's
// json.info_NNNNNNNNNN leader nodes.
type MasterInfo struct {
	ID       string   `json:"id"`
	IP       uint32   `json:"ip"`
	Port     int      `json:"port"`
	PID      string   `json:"pid,omitempty"`
	Hostname string   `json:"hostname,omitempty"`
	Version  string   `json:"version,omitempty"`
	Address  *Address `json:"address,omitempty"`
}

// IPv4ToUint32 encodes an IPv4 address the way MasterInfo.ip does (network
// byte order read as little endian, as Mesos does). It returns 0 for
// anything that is not IPv4.
func IPv4ToUint32(ip net.IP) uint32 {
	v4 := ip.To4()
	if v4 == nil {
		return 0
	}
	return uint32(v4[0]) | uint32(v4[1])<<8 | uint32(v4[2])<<16 | uint32(v4[3])<<24
}

// AgentInfo describes an agent.
type AgentInfo struct {
	ID         *ID         `json:"id,omitempty"`
	Hostname   string      `json:"hostname"`
	Port       int         `json:"port,omitempty"`
	Resources  Resources   `json:"resources,omitempty"`
	Attributes []Attribute `json:"attributes,omitempty"`
}

// AgentPID renders the libprocess-style PID Mesos reports for an agent,
// "slave(1)@IP:PORT", which Mesos-DNS parses for the agent's IP.
func AgentPID(ip string, port int) string {
	return fmt.Sprintf("slave(1)@%s", net.JoinHostPort(ip, fmt.Sprint(port)))
}

// IPFromPID extracts the IP of a libprocess PID ("name@IP:PORT"); "" if the
// PID has no parsable address.
func IPFromPID(pid string) string {
	at := strings.LastIndexByte(pid, '@')
	if at < 0 {
		return ""
	}
	host, _, err := net.SplitHostPort(pid[at+1:])
	if err != nil {
		return ""
	}
	return host
}

// FrameworkInfo describes a framework, as sent in SUBSCRIBE.
type FrameworkInfo struct {
	ID              *ID                   `json:"id,omitempty"`
	User            string                `json:"user"`
	Name            string                `json:"name"`
	FailoverTimeout float64               `json:"failover_timeout,omitempty"`
	Checkpoint      bool                  `json:"checkpoint,omitempty"`
	Role            string                `json:"role,omitempty"`
	Roles           []string              `json:"roles,omitempty"`
	Hostname        string                `json:"hostname,omitempty"`
	Principal       string                `json:"principal,omitempty"`
	WebUIURL        string                `json:"webui_url,omitempty"`
	Capabilities    []FrameworkCapability `json:"capabilities,omitempty"`
	Labels          *Labels               `json:"labels,omitempty"`
}

// FrameworkCapability is one capability a framework declares.
type FrameworkCapability struct {
	Type string `json:"type"`
}

// Framework capability names Keel understands.
const (
	CapabilityTaskKillingState = "TASK_KILLING_STATE"
	CapabilityPartitionAware   = "PARTITION_AWARE"
	CapabilityMultiRole        = "MULTI_ROLE"
)

// HasCapability reports whether the framework declared capability c.
func (f *FrameworkInfo) HasCapability(c string) bool {
	for _, fc := range f.Capabilities {
		if fc.Type == c {
			return true
		}
	}
	return false
}

// Environment is CommandInfo.environment.
type Environment struct {
	Variables []EnvVar `json:"variables,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Type  string `json:"type,omitempty"`
	Value string `json:"value,omitempty"`
}

// URI is a CommandInfo.URI to fetch into the sandbox.
type URI struct {
	Value      string `json:"value"`
	Executable bool   `json:"executable,omitempty"`
	Extract    *bool  `json:"extract,omitempty"`
	Cache      bool   `json:"cache,omitempty"`
	OutputFile string `json:"output_file,omitempty"`
}

// CommandInfo says what a task runs. With Shell (the default when nil) Value
// runs under /bin/sh -c; otherwise Value is the executable and Arguments its
// argv.
type CommandInfo struct {
	Value       string       `json:"value,omitempty"`
	Shell       *bool        `json:"shell,omitempty"`
	Arguments   []string     `json:"arguments,omitempty"`
	Environment *Environment `json:"environment,omitempty"`
	URIs        []URI        `json:"uris,omitempty"`
	User        string       `json:"user,omitempty"`
}

// IsShell reports whether the command runs under a shell (default true).
func (c *CommandInfo) IsShell() bool { return c.Shell == nil || *c.Shell }

// ContainerInfo is the container a task runs in.
type ContainerInfo struct {
	Type         string        `json:"type"` // MESOS or DOCKER
	Docker       *DockerInfo   `json:"docker,omitempty"`
	NetworkInfos []NetworkInfo `json:"network_infos,omitempty"`
	Hostname     string        `json:"hostname,omitempty"`
	Volumes      []Volume      `json:"volumes,omitempty"`
}

// Volume is a host path mounted into a container (Mesos' Volume with
// host_path; a relative host path is relative to the task's sandbox).
type Volume struct {
	ContainerPath string `json:"container_path"`
	HostPath      string `json:"host_path,omitempty"`
	Mode          string `json:"mode,omitempty"` // RW (default) or RO
}

// DockerInfo is ContainerInfo.DockerInfo.
type DockerInfo struct {
	Image          string        `json:"image"`
	Network        string        `json:"network,omitempty"` // HOST, BRIDGE, NONE, USER
	PortMappings   []PortMapping `json:"port_mappings,omitempty"`
	Privileged     bool          `json:"privileged,omitempty"`
	Parameters     []Parameter   `json:"parameters,omitempty"`
	ForcePullImage bool          `json:"force_pull_image,omitempty"`
}

// PortMapping maps a host port to a container port.
type PortMapping struct {
	HostPort      uint32 `json:"host_port"`
	ContainerPort uint32 `json:"container_port"`
	Protocol      string `json:"protocol,omitempty"`
}

// Parameter is a key/value docker run parameter.
type Parameter struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// NetworkInfo is one network a container is attached to.
type NetworkInfo struct {
	IPAddresses []IPAddress `json:"ip_addresses,omitempty"`
	Name        string      `json:"name,omitempty"`
	Labels      *Labels     `json:"labels,omitempty"`
}

// IPAddress is an address on a network.
type IPAddress struct {
	Protocol  string `json:"protocol,omitempty"` // IPv4 or IPv6
	IPAddress string `json:"ip_address,omitempty"`
}

// ContainerStatus reports a running container's networks.
type ContainerStatus struct {
	ContainerID  *ID           `json:"container_id,omitempty"`
	NetworkInfos []NetworkInfo `json:"network_infos,omitempty"`
	ExecutorPID  int           `json:"executor_pid,omitempty"`
}

// DurationInfo is a duration in nanoseconds.
type DurationInfo struct {
	Nanoseconds int64 `json:"nanoseconds"`
}

// KillPolicy is how a task is killed.
type KillPolicy struct {
	GracePeriod *DurationInfo `json:"grace_period,omitempty"`
}

// HealthCheck is a Mesos-native health check run by the agent.
type HealthCheck struct {
	Type                string       `json:"type"` // COMMAND, HTTP, TCP
	DelaySeconds        float64      `json:"delay_seconds,omitempty"`
	IntervalSeconds     float64      `json:"interval_seconds,omitempty"`
	TimeoutSeconds      float64      `json:"timeout_seconds,omitempty"`
	ConsecutiveFailures uint32       `json:"consecutive_failures,omitempty"`
	GracePeriodSeconds  float64      `json:"grace_period_seconds,omitempty"`
	Command             *CommandInfo `json:"command,omitempty"`
	HTTP                *HTTPCheck   `json:"http,omitempty"`
	TCP                 *TCPCheck    `json:"tcp,omitempty"`
}

// HTTPCheck is HealthCheck.HTTPCheckInfo.
type HTTPCheck struct {
	Scheme   string   `json:"scheme,omitempty"`
	Port     uint32   `json:"port"`
	Path     string   `json:"path,omitempty"`
	Statuses []uint32 `json:"statuses,omitempty"`
}

// TCPCheck is HealthCheck.TCPCheckInfo.
type TCPCheck struct {
	Port uint32 `json:"port"`
}

// DiscoveryInfo is how a task wants to be found (Mesos-DNS reads it).
type DiscoveryInfo struct {
	Visibility  string  `json:"visibility"` // FRAMEWORK, CLUSTER, EXTERNAL
	Name        string  `json:"name,omitempty"`
	Environment string  `json:"environment,omitempty"`
	Location    string  `json:"location,omitempty"`
	Version     string  `json:"version,omitempty"`
	Ports       *Ports  `json:"ports,omitempty"`
	Labels      *Labels `json:"labels,omitempty"`
}

// Ports is DiscoveryInfo.ports.
type Ports struct {
	Ports []Port `json:"ports,omitempty"`
}

// Port is one named port of a task.
type Port struct {
	Number   uint32  `json:"number"`
	Name     string  `json:"name,omitempty"`
	Protocol string  `json:"protocol,omitempty"`
	Labels   *Labels `json:"labels,omitempty"`
}

// LabelServicePort is the DiscoveryInfo port label with which the apps
// framework tells gateways the service port a host port belongs to.
const LabelServicePort = "keel.service_port"

// TaskInfo describes a task to launch.
type TaskInfo struct {
	Name        string         `json:"name"`
	TaskID      ID             `json:"task_id"`
	AgentID     ID             `json:"agent_id"`
	Resources   Resources      `json:"resources"`
	Command     *CommandInfo   `json:"command,omitempty"`
	Container   *ContainerInfo `json:"container,omitempty"`
	HealthCheck *HealthCheck   `json:"health_check,omitempty"`
	KillPolicy  *KillPolicy    `json:"kill_policy,omitempty"`
	Labels      *Labels        `json:"labels,omitempty"`
	Discovery   *DiscoveryInfo `json:"discovery,omitempty"`
}

// TaskStatus is a status update for a task.
type TaskStatus struct {
	TaskID          ID               `json:"task_id"`
	State           TaskState        `json:"state"`
	Message         string           `json:"message,omitempty"`
	Source          string           `json:"source,omitempty"` // SOURCE_MASTER, SOURCE_AGENT, SOURCE_EXECUTOR
	Reason          string           `json:"reason,omitempty"`
	AgentID         *ID              `json:"agent_id,omitempty"`
	Timestamp       float64          `json:"timestamp,omitempty"`
	UUID            []byte           `json:"uuid,omitempty"` // base64 in JSON, as protobuf bytes
	Healthy         *bool            `json:"healthy,omitempty"`
	Labels          *Labels          `json:"labels,omitempty"`
	ContainerStatus *ContainerStatus `json:"container_status,omitempty"`
}

// Task is the master's record of a task (operator API, /master/state).
type Task struct {
	Name              string         `json:"name"`
	TaskID            ID             `json:"task_id"`
	FrameworkID       ID             `json:"framework_id"`
	AgentID           ID             `json:"agent_id"`
	State             TaskState      `json:"state"`
	Resources         Resources      `json:"resources,omitempty"`
	Statuses          []TaskStatus   `json:"statuses,omitempty"`
	StatusUpdateState TaskState      `json:"status_update_state,omitempty"`
	StatusUpdateUUID  []byte         `json:"status_update_uuid,omitempty"`
	Labels            *Labels        `json:"labels,omitempty"`
	Discovery         *DiscoveryInfo `json:"discovery,omitempty"`
	Container         *ContainerInfo `json:"container,omitempty"`
	HealthCheck       *HealthCheck   `json:"health_check,omitempty"`
	KillPolicy        *KillPolicy    `json:"kill_policy,omitempty"`
	User              string         `json:"user,omitempty"`
}

// Offer is a set of an agent's resources offered to one framework.
type Offer struct {
	ID          ID          `json:"id"`
	FrameworkID ID          `json:"framework_id"`
	AgentID     ID          `json:"agent_id"`
	Hostname    string      `json:"hostname"`
	Resources   Resources   `json:"resources"`
	Attributes  []Attribute `json:"attributes,omitempty"`
	// AllocationInfo names the role the offer is made to (a MULTI_ROLE
	// framework gets offers per role).
	AllocationInfo *AllocationInfo `json:"allocation_info,omitempty"`
}

// AllocationInfo is Resource.AllocationInfo: the role resources are
// allocated to.
type AllocationInfo struct {
	Role string `json:"role"`
}

// Filters is the filter a framework attaches to a DECLINE or ACCEPT.
type Filters struct {
	RefuseSeconds *float64 `json:"refuse_seconds,omitempty"`
}

// LabelAppID is the task label in which the apps framework records the
// Marathon app ID ("/prod/web") of the tasks it launches.
const LabelAppID = "keel.app_id"
