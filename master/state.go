package master

import (
	"net/http"
	"sort"

	"github.com/keelhq/keel/api/mesos"
)

// The v0 JSON of /master/state (and /state.json): the shape Mesos-DNS,
// mesos-exporter and the old Mesos UI read. Resources are flattened to a
// map with ports as "[31000-31005]".

type v0State struct {
	Version         string           `json:"version"`
	ID              string           `json:"id"`
	PID             string           `json:"pid"`
	Hostname        string           `json:"hostname"`
	Leader          string           `json:"leader"`
	LeaderInfo      mesos.MasterInfo `json:"leader_info"`
	StartTime       float64          `json:"start_time"`
	ElectedTime     float64          `json:"elected_time"`
	ActivatedSlaves int              `json:"activated_slaves"`
	Frameworks      []v0Framework    `json:"frameworks"`
	Slaves          []v0Slave        `json:"slaves"`
}

type v0Framework struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	Hostname       string         `json:"hostname"`
	User           string         `json:"user"`
	Role           string         `json:"role"`
	Active         bool           `json:"active"`
	WebUIURL       string         `json:"webui_url,omitempty"`
	Resources      map[string]any `json:"resources"`
	Tasks          []v0Task       `json:"tasks"`
	CompletedTasks []v0Task       `json:"completed_tasks"`
}

type v0Task struct {
	ID          string               `json:"id"`
	Name        string               `json:"name"`
	FrameworkID string               `json:"framework_id"`
	SlaveID     string               `json:"slave_id"`
	State       mesos.TaskState      `json:"state"`
	Resources   map[string]any       `json:"resources"`
	Statuses    []v0Status           `json:"statuses"`
	Labels      []mesos.Label        `json:"labels,omitempty"`
	Discovery   *mesos.DiscoveryInfo `json:"discovery,omitempty"`
	Container   *mesos.ContainerInfo `json:"container,omitempty"`
}

type v0Status struct {
	State           mesos.TaskState        `json:"state"`
	Timestamp       float64                `json:"timestamp"`
	Healthy         *bool                  `json:"healthy,omitempty"`
	ContainerStatus *mesos.ContainerStatus `json:"container_status,omitempty"`
}

type v0Slave struct {
	ID            string            `json:"id"`
	PID           string            `json:"pid"`
	Hostname      string            `json:"hostname"`
	Port          int               `json:"port"`
	Active        bool              `json:"active"`
	Version       string            `json:"version,omitempty"`
	Resources     map[string]any    `json:"resources"`
	UsedResources map[string]any    `json:"used_resources"`
	Attributes    map[string]string `json:"attributes"`
}

func v0TaskOf(t mesos.Task) v0Task {
	vt := v0Task{ID: t.TaskID.Value, Name: t.Name, FrameworkID: t.FrameworkID.Value, SlaveID: t.AgentID.Value,
		State: t.State, Resources: t.Resources.V0(), Discovery: t.Discovery, Container: t.Container,
		Statuses: []v0Status{}}
	if t.Labels != nil {
		vt.Labels = t.Labels.Labels
	}
	for _, s := range t.Statuses {
		vt.Statuses = append(vt.Statuses, v0Status{State: s.State, Timestamp: s.Timestamp, Healthy: s.Healthy, ContainerStatus: s.ContainerStatus})
	}
	return vt
}

// handleState serves /master/state and /state.json.
func (m *Master) handleState(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	st := v0State{
		Version: m.cfg.Version, ID: m.info.ID, PID: m.info.PID, Hostname: m.info.Hostname,
		Leader: m.info.PID, LeaderInfo: m.info,
		StartTime: float64(m.start.UnixNano()) / 1e9, ElectedTime: float64(m.start.UnixNano()) / 1e9,
		Frameworks: []v0Framework{}, Slaves: []v0Slave{},
	}
	byFw := map[string]*v0Framework{}
	for id, f := range m.frameworks {
		byFw[id] = &v0Framework{ID: id, Name: f.info.Name, Hostname: f.info.Hostname, User: f.info.User,
			Role: frameworkRoles(f.info)[0], Active: f.conn != nil, WebUIURL: f.info.WebUIURL,
			Resources: f.allocated.V0(), Tasks: []v0Task{}, CompletedTasks: []v0Task{}}
	}
	for _, t := range m.tasks {
		if f := byFw[t.task.FrameworkID.Value]; f != nil {
			f.Tasks = append(f.Tasks, v0TaskOf(t.task))
		}
	}
	for _, t := range m.completed {
		if f := byFw[t.FrameworkID.Value]; f != nil {
			f.CompletedTasks = append(f.CompletedTasks, v0TaskOf(t))
		}
	}
	for id, a := range m.agents {
		attrs := map[string]string{}
		for _, at := range a.info.Attributes {
			if at.Text != nil {
				attrs[at.Name] = at.Text.Value
			}
		}
		if a.conn != nil {
			st.ActivatedSlaves++
		}
		st.Slaves = append(st.Slaves, v0Slave{ID: id, PID: a.pid, Hostname: a.info.Hostname, Port: a.info.Port,
			Active: a.conn != nil, Version: a.version, Resources: a.total.V0(), UsedResources: a.used.V0(), Attributes: attrs})
	}
	m.mu.Unlock()
	for _, f := range byFw {
		sort.Slice(f.Tasks, func(i, j int) bool { return f.Tasks[i].ID < f.Tasks[j].ID })
		st.Frameworks = append(st.Frameworks, *f)
	}
	sort.Slice(st.Frameworks, func(i, j int) bool { return st.Frameworks[i].ID < st.Frameworks[j].ID })
	sort.Slice(st.Slaves, func(i, j int) bool { return st.Slaves[i].ID < st.Slaves[j].ID })
	writeJSON(w, http.StatusOK, st)
}
